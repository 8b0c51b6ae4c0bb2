"""Every script in benchmarks/ runs (`--smoke`: each measurement at a tiny size) and prints
the table and ratios it is for, so moving what a benchmark uses cannot break it silently."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import pytest

from .conftest import REPO

NUM = r"-?\d[\d,]*(\.\d+)?"  # a printed figure: 12, 1,234, 0.0042


def run_smoke(script: str, timeout: float = 120) -> str:
    """stdout of `python benchmarks/<script> --smoke` from the repo root; exit status 0.

    Its own session, so a timeout also ends what it started (moto's server, pool workers)."""
    proc = subprocess.Popen([sys.executable, f"benchmarks/{script}", "--smoke"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"{script} --smoke ran past {timeout} s")
    assert proc.returncode == 0, f"{script} --smoke exited {proc.returncode}:\n{err[-3000:]}"
    assert "Traceback" not in err, err[-3000:]
    return out


def assert_lines(out: str, *patterns: str) -> None:
    """Each pattern matches one whole line of `out` (figures as NUM)."""
    lines = out.splitlines()
    for pattern in patterns:
        regex = re.compile(pattern.replace("{NUM}", NUM))
        assert any(regex.fullmatch(line.strip()) for line in lines), \
            f"no line matches {pattern!r} in:\n{out}"


def test_bench_resolve_prints_its_table_and_ratio():
    out = run_smoke("bench_resolve.py")
    assert_lines(out,
                 r"what +seconds +limit +ok",
                 r"registry resolve, built, 2 files +{NUM} +0\.30 +(yes|NO)",
                 r"registry resolve, built, 100 files +{NUM} +0\.30 +(yes|NO)",
                 r"re-check unchanged val tar +{NUM} +0\.05 +(yes|NO)",
                 r"re-check unchanged folder of 100 files +{NUM} +1\.00 +(yes|NO)",
                 r"ratio: 100-file / 2-file resolve +{NUM}",
                 r"\(whole-process `registry source check`, tar\) +{NUM}")


def test_bench_pull_prints_pull_against_s3fs_get_and_the_ratio():
    out = run_smoke("bench_pull.py")  # starts (and stops) moto's server itself
    assert_lines(out,
                 r"40 synthetic val images 160x120 as a WebDataset variant of \d+ files "
                 r"\({NUM} MB\), moto server on 127\.0\.0\.1:\d+",
                 r"what +seconds +MB/s",
                 r"s3fs get +{NUM} +{NUM}",
                 r"registry pull +{NUM} +{NUM}",
                 r"ratio: s3fs get / registry pull {NUM} \(target >= 0\.8: (yes|NO)\)")


def test_bench_one_file_prints_every_method_and_the_ratio():
    out = run_smoke("bench_one_file.py")
    assert_lines(out,
                 r"{NUM} GiB, 2 processes, page cache, best of 2",
                 *[rf"{label} +{{NUM}} s +{{NUM}} GB/s" for label in (
                     r"2 processes into one file \(pwritev\)",
                     "the same, file posix_fallocate'd first",
                     "the same through shared mappings",
                     "2 processes into a file each",
                     "one process into one file")],
                 r"one file / separate files: {NUM}x the time")


def test_bench_tiny_prints_every_section():
    out = run_smoke("bench_tiny.py")
    assert_lines(out,
                 r"## speed, one core: 20 JPEGs, .*",
                 r"plain Pillow: full decode \+ convert \+ box resize +{NUM}",
                 r"ours: whole `resolve`, 1 worker .* +{NUM}",
                 r"ratio ours / plain Pillow +{NUM} +\(target >= 2\.5\)",
                 r"ratio ours / decode floor +{NUM} +\(target >= 0\.95\)",
                 r"ratio ours / straight decode {NUM} +\(what the resize, .*",
                 r"## scaling: whole resolve, 20 train images .*",
                 r"1 +{NUM} +{NUM} +1\.00 +plan {NUM} tasks {NUM} .*",
                 r"same digest for every worker count: True",
                 r"hardware ceiling, bare 1/8 decode .* efficiency {NUM}",
                 r"ratio ours / bare efficiency at \d+ workers {NUM} \(target >= 0\.9, issue 19\)",
                 r"## memory: .*",
                 r"40 +{NUM} +{NUM}",
                 r"80 +{NUM} +{NUM}",
                 r"growth per image: RSS {NUM} bytes, Python heap {NUM} bytes .*",
                 r"## accuracy: .*",
                 *[rf"{spec} +{{NUM}} +{{NUM}} +{{NUM}}" for spec in (
                     "32x32 srgb squash box", "32x32 srgb crop box", "32x32 srgb pad box",
                     "64x64 srgb crop box", "16x16 gray crop box", "8x8 gray crop box",
                     "32x32 srgb squash lanczos")])


def test_bench_shards_prints_speed_memory_the_small_build_and_whole_commands():
    out = run_smoke("bench_shards.py")
    assert_lines(out,
                 r"## small: 20 photos of {NUM} KiB \({NUM} MiB tar\), 1 worker\(s\), .*",
                 *[rf"{label} +{{NUM}} +{{NUM}} +{{NUM}}" for label in (
                     r"tarfile \+ webdataset\.ShardWriter script, 1 process",
                     r"bare check-decode loop, `jobs` processes",
                     r"registry resolve wds, checked, cold",
                     r"registry resolve wds, validate_images: false")],
                 r"ratio wds checked cold / decode floor +{NUM}",
                 r"## memory: train tars of 10 class tars, .*",
                 *[rf"{n} +{recipe} +{{NUM}} +{{NUM}}" for n in (20, 40)
                   for recipe in ("recordio", "wds")],
                 r"recordio: coordinator growth {NUM} bytes per record; .* GiB",
                 r"10 images in a tar of 2 class tars, .* best of 1",
                 *[rf"{label} +{{NUM}} +{{NUM}} +{{NUM}}" for label in (
                     "plain sequential copy of the member bytes",
                     r"bare check-decode loop \(the checked floor\)",
                     "check-decode loop writing what it checked",
                     r"read_members, no xxh3 check \(one process\)",
                     "read_members, each checked vs its index xxh3",
                     r"recordio pass-through \(whole resolve\)",
                     r"webdataset shards \(whole resolve\)",
                     r"tfrecord, re-encoding hazards \(whole resolve\)",
                     "recordio, validate_images: false",
                     "webdataset, validate_images: false",
                     "tfrecord, validate_images: false",
                     *[rf"{r}, checks known \(warm\)" for r in ("recordio", "webdataset",
                                                                "tfrecord")])],
                 r"ratio recordio / copy +{NUM} +\(target >= 0\.7\)",
                 r"ratio wds / copy +{NUM} +\(target >= 0\.7\)",
                 r"ratio wds unchecked / copy +{NUM} +\(checks cost {NUM}x\)",
                 r"ratio tfrecord / decode floor +{NUM} +"
                 r"\(target >= 0\.9; of decode\+write {NUM}\)",
                 r"checked cold, warm, unchecked \(s\) +cold +warm +unchecked +warm/unch "
                 r"+cold/unch",
                 *[rf"{name} \(warm target >= 0\.9\) +{{NUM}} +{{NUM}} +{{NUM}} +{{NUM}} +{{NUM}}"
                   for name in ("recordio", "wds", "tfrecord")],
                 r"tfrecord images/s per core: {NUM}",
                 r"ratio read checked / unchecked +{NUM} +\(what never serving a stale key .*",
                 r"## whole: 10 images in a tar of 2 class tars, 1 worker\(s\), .*",
                 r"method +seconds +img/s +floor/this +\(\+write\)/this",
                 *[rf"{label} +{{NUM}} +{{NUM}} +{{NUM}} +{{NUM}}" for label in (
                     r"bare check-decode loop, `jobs` processes",
                     "the same loop writing what it checked",
                     *(f"registry resolve {r}, checked, cold"
                       for r in ("recordio", "wds", "tfrecord")))],
                 r"target: each checked cold resolve at >= 0\.9 of the bare check loop "
                 r"\(floor/this\); \(\+write\)/this: .*",
                 r"where each best run's seconds went \(its marker's phases; .*",
                 r"before +plan +checks +tasks +finish +index +after",
                 *[rf"registry resolve {r}" + 7 * r" +{NUM}"
                   for r in ("recordio", "wds", "tfrecord")])


def test_bench_s3_prints_local_against_s3_and_the_upload_ratio():
    out = run_smoke("bench_s3.py")  # starts (and stops) moto's server itself
    assert_lines(out,
                 r"20 synthetic val images 160x120, 2 workers, moto server on 127\.0\.0\.1:\d+",
                 r"variant +files +local s +s3 s +s3 files/s +local/s3",
                 r"cal +21 +{NUM} +{NUM} +{NUM} +{NUM}",
                 r"tiny +23 +{NUM} +{NUM} +{NUM} +{NUM}",
                 r"upload 20 files of 600 B: serial {NUM} s \({NUM}/s\), batched {NUM} s "
                 r"\({NUM}/s\), serial/batch {NUM}")


def test_bench_diff_prints_its_time_and_the_planted_counts():
    out = run_smoke("bench_diff.py")
    assert_lines(out,
                 r"2 file tables of 2,000 rows \(ImageNet train-shaped\), 1 split, 1,000 "
                 r"classes, \d+ cores",
                 r"what +seconds +peak RSS MB",
                 r"compare \(registry diff\) +{NUM} +{NUM}",
                 r"counts as planted: True")


def test_bench_artifact_prints_old_and_new_side_by_side_and_the_planted_copies():
    out = run_smoke("bench_artifact.py")
    assert_lines(out,
                 r"20,000 file rows \(ImageNet train-shaped: 1,000 classes, splits train and "
                 r"val\), \d+ cores, each way in a fresh process \({NUM} MB after imports\)",
                 r"what +seconds +peak RSS MB",
                 *[rf"{label} +{{NUM}} +{{NUM}}" for label in (
                     r"artifact_members, old \(a MemberRef per row\)",
                     r"artifact_members \(columns\)", "audit exact copies, old grouping",
                     "audit exact copies")],
                 r"ratio old / new artifact_members: {NUM}x the time, {NUM}x the peak RSS",
                 r"ratio old / new exact-copy grouping: {NUM}x the time",
                 r"same members both ways: True",
                 r"same groups both ways: True",
                 r"copies as planted: True \(12 across splits, 7 within one\)")


def test_bench_sql_prints_each_command_against_its_bare_duckdb_floor():
    out = run_smoke("bench_sql.py")
    built = r"imagenet-calibration-first\.1"
    assert_lines(out,
                 r"2,000 file rows in the catalog \({NUM} MB\), \d+ cores \(load average {NUM}\), "
                 r"median of 1 runs, bytecode compiled",
                 r"what +seconds +x floor",
                 *[rf"{what} +{{NUM}} +{{NUM}}" for what in (
                     "bare duckdb process, scan query", "registry sql, scan query",
                     "bare duckdb process, small query", "registry sql, small query",
                     *[f"bare duckdb process, {c} query" for c in ("show", "lineage", "path",
                                                                   "list")],
                     f"registry show {built}", f"registry lineage {built}",
                     f"registry path {built}", "registry list",
                     r"registry show \(full path\)")],
                 *[rf"ratio: registry sql, {q} query / bare {{NUM}} \(target <= 1\.5: (yes|NO)\)"
                   for q in ("scan", "small")],
                 *[rf"ratio: registry {c} / bare {{NUM}} \(target <= 1\.5: (yes|NO)\)"
                   for c in (f"show {built}", f"lineage {built}", f"path {built}", "list")],
                 r"ratio: registry show \(full path\) / bare {NUM} \(the first run after a "
                 r"change: no target\)",
                 r"slowest registry sql: {NUM} s, sql, (scan|small) query \(target <= 0\.3 s "
                 r"at 5,000,000 rows on 16 cores\)",
                 r"slowest registry command: {NUM} s, .+ \(target <= 0\.3 s at 5,000,000 rows "
                 r"on 16 cores\)")


def test_bench_index_prints_indexing_against_one_xxh3_pass():
    out = run_smoke("bench_index.py")
    assert_lines(out,
                 r"2,000 members of 1,500 bytes in 4 class tars; \d+ cores; floor: .+; best of 1",
                 r"what +seconds +MB/s +members/s +peak MiB",
                 r"floor tar +{NUM} +{NUM} +{NUM} +{NUM}",
                 r"ours tar +{NUM} +{NUM} +{NUM} +{NUM}",
                 r"ratio ours / floor throughput, tar +{NUM} +\(target >= 0\.5 for "
                 r"ImageNet-sized members\)",
                 r"ours tar: {NUM} s, peak {NUM} GiB +\(targets at 1,281,167 members on 16 "
                 r"cores: <= 5\.0 s, < 0\.5 GiB\)")


def test_bench_writes_prints_each_way_of_writing_and_the_ratio():
    out = run_smoke("bench_writes.py")
    assert_lines(out,
                 r"2 writer\(s\) of 8 MiB each, {NUM} cores, 0 s settled before each run, "
                 r"best of 1",
                 r"method +CPU ms/MB +wall s",
                 r"a task's region \(6\.3 MB\) in one call +{NUM} +{NUM}",
                 r"the region a piece at a time \(256 KiB calls\) +{NUM} +{NUM}",
                 *[rf"plain calls of {k} KiB +{{NUM}} +{{NUM}}"
                   for k in (64, 256, 1024, 2048, 8192)],
                 r"ratio region in one call / a piece at a time \(CPU per MB\) +{NUM}")


def test_bench_plan_prints_the_floor_the_plan_before_and_now_and_the_same_tasks():
    out = run_smoke("bench_plan.py")
    assert_lines(out,
                 r"## plan: select of 5,000 members \(image-folder tar\), best of 1",
                 r"method +seconds +members/s",
                 r"floor: every member's ref, a batch at a time +{NUM} +{NUM}",
                 r"select's plan +{NUM} +{NUM}",
                 r"select's plan before +{NUM} +{NUM}",
                 r"ratio floor / select's plan +{NUM}",
                 r"ratio before / now +{NUM}",
                 r"the same tasks: yes")
