"""Training shards from a train tar of class tars: throughput against a plain copy; memory.

    python benchmarks/bench_shards.py [--classes 40] [--per-class 250] [--jobs 1] [--quality 98]
    python benchmarks/bench_shards.py --sections memory [--memory-sizes 100000,400000]
    python benchmarks/bench_shards.py --sections small [--small-images 5020] [--jobs 2]
    python benchmarks/bench_shards.py --sections whole [--classes 100 --per-class 300]
    python benchmarks/bench_shards.py --smoke

Side by side in one run, on the same members of one tar (read in place):
copy      a plain sequential copy of the members' bytes into one file (read, write)
recordio  the whole `resolve` of the pass-through recordio recipe
wds       the whole `resolve` of the webdataset recipe
tfrecord  the whole `resolve` of the tfrecord recipe (pass-through, PNG/CMYK re-encoded)
decode    the floor of a checked build: a bare loop of the check every recipe runs by
          default (Pillow decode, 1/8 DCT scale) over the same members, in --jobs processes
decode+write  the same loop writing each chunk's member bytes into a file of its own (with
          the calls a build's task makes to write its region, core.filewrites; no headers,
          a new file a chunk of 256): the floor of a checked build
          that writes what it checked. Writing costs what the page cache's new pages
          cost: on a virtual machine that hands freed memory back to its host (free page
          reporting), more than on bare metal (see benchmarks/bench_writes.py); the bare
          loop writes nothing
--settle S  wait S seconds before each timed run of the speed and whole sections, once
          the outputs are emptied: where freed memory goes back to the host about 2 s
          after it is freed (this project's CI machine), a run right after another's
          output was deleted writes into memory still held, one after a pause does not;
          with --settle 5 every run meets the same
*-unchecked  recordio, webdataset and tfrecord with `validate_images: false`
*-warm    the same checked builds again, the source's check verdicts already in the state
          folder (engine/imagechecks.py: no image decoded); the plain checked builds run
          cold, the verdicts removed first
Prints MB/s, images/s, recordio/copy and wds/copy ratios (target >= 0.7), the cold
checked builds against the decode floor (target >= 0.9), and checked-cold, checked-warm
and unchecked builds side by side (warm: target >= 0.9 of unchecked).

memory: peak RSS of the coordinator resolving the recordio and webdataset
recipes over train tars of two sizes (small 64x48 images, so the tars stay
small), each in a fresh process; workers hold one task (256 records, or one
shard) at a time, whatever the size.

small: what a user waits for on a small build, each in a fresh process (interpreter,
imports, fork server, plan, tasks, index, catalog): `registry resolve wds` checked
(cold: verdicts removed first) and unchecked, with the source already set and indexed,
beside the bare check-decode loop over the same members in --jobs processes (DECODE),
and side by side with SCRIPT, the 11 lines (issue 19 says 12) that read the same tar with
tarfile and write the same samples with webdataset's own ShardWriter in one process,
unchecked (issue 19's comparison; target: the checked resolve faster than the script).

whole: each recipe's checked, cold `registry resolve` (the speed section's tar) as the
whole command a user runs, a fresh process each (interpreter, imports, workers, plan,
tasks, index, catalog), beside DECODE, the bare check loop, also a whole process
(target: >= 0.9 of it), and beside decode+write, that loop writing what it checked. The
speed section times them inside one warm process instead. Under the table, where each
resolve's best run went: its marker's phases (engine/build.py), what came before the build
began (interpreter, imports, manifests, keys, the workers' start) and what came after it
(publishing, the pool's shutdown, the catalog's rows, the exit).

--smoke runs every section on a few dozen images (seconds): it checks that the script
works, not how fast.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import cpu_count, mean_kib, pool, write_imagenet_manifest, write_train_tar
from dataset_registry import Registry
from dataset_registry.engine.imagechecks import ImageChecks

SMOKE = {"classes": 2, "per_class": 5, "distinct": 4, "repeat": 1,
         "sections": "speed,memory,small,whole", "memory_sizes": "20,40", "memory_classes": 10,
         "small_images": 20}


def write_manifest(root: Path, *, require_all_classes: bool, shards: int = 64) -> None:
    """The ImageNet sources, the shipped labels, and datasets recordio, wds and tfrecord
    (in `shards` shards: no more than there are images)."""
    params = f"require_all_classes: {str(require_all_classes).lower()}"
    write_imagenet_manifest(root, f"""
  - {{name: recordio, recipe: recordio, inputs: {{images: train, labels: labels}},
     params: {{{params}}}}}
  - {{name: wds, recipe: webdataset, inputs: {{images: train, labels: labels}},
     params: {{{params}}}}}
  - {{name: tfrecord, recipe: tfrecord, inputs: {{images: train, labels: labels}},
     params: {{{params}, shards: {shards}}}}}
  - {{name: recordio-unchecked, recipe: recordio, inputs: {{images: train, labels: labels}},
     params: {{{params}, validate_images: false}}}}
  - {{name: wds-unchecked, recipe: webdataset, inputs: {{images: train, labels: labels}},
     params: {{{params}, validate_images: false}}}}
  - {{name: tfrecord-unchecked, recipe: tfrecord, inputs: {{images: train, labels: labels}},
     params: {{{params}, shards: {shards}, validate_images: false}}}}
""")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--classes", type=int, default=40)
    ap.add_argument("--per-class", type=int, default=250)
    ap.add_argument("--distinct", type=int, default=300)
    ap.add_argument("--jobs", type=int, default=1, help="workers for the recipes")
    ap.add_argument("--quality", type=int, default=98,
                    help="JPEG quality of the pool (98: ~96 KiB, near ImageNet's ~110 KiB mean)")
    ap.add_argument("--sections", default="speed", help="speed,memory,small,whole")
    ap.add_argument("--memory-sizes", default="20000,100000")
    ap.add_argument("--memory-classes", type=int, default=1000,
                    help="class tars in the memory section's train tars")
    ap.add_argument("--repeat", type=int, default=3, help="speed runs per method; the best")
    ap.add_argument("--small-images", type=int, default=5020,
                    help="photos in the small section's tar (10 class tars)")
    ap.add_argument("--settle", type=float, default=0.0,
                    help="seconds to wait before each timed run of the speed and whole sections, "
                         "after emptying the outputs (see the module's doc)")
    ap.add_argument("--smoke", action="store_true", help="both sections, tiny")
    args = ap.parse_args()
    if args.smoke:
        vars(args).update(SMOKE)
    if "memory" in args.sections.split(","):
        memory([int(n) for n in args.memory_sizes.split(",")], args.jobs, args.memory_classes)
    if "small" in args.sections.split(","):
        small(args.small_images, args.jobs, args.quality, args.repeat)
    if "whole" in args.sections.split(","):
        whole(args.classes, args.per_class, args.distinct, args.jobs, args.quality,
              args.repeat, args.settle)
    if "speed" not in args.sections.split(","):
        return 0

    from dataset_registry.sources.index import member_sets

    work = Path(tempfile.mkdtemp(prefix="bench-shards-"))
    try:
        images = pool(args.distinct, 500, 375, cpu_count(), quality=args.quality)
        tar = write_train_tar(str(work / "train.tar"), images, args.classes, args.per_class)
        write_manifest(work, require_all_classes=False,  # 40 of the 1000 classes
                       shards=min(64, args.classes * args.per_class))
        reg = Registry.open(str(work))
        reg.set_source("train", tar)
        refs = member_sets(reg.resolver.source_info("train"))["train"]
        n = len(refs)
        payload = int(refs.sizes.sum())

        def copy() -> None:
            with open(tar, "rb") as src, open(work / "copy.bin", "wb") as dst:
                for offset, size in zip(refs.offsets.tolist(), refs.sizes.tolist(), strict=True):
                    dst.write(os.pread(src.fileno(), size, offset))

        def decode(out: Path | None = None) -> None:
            spans = list(zip(refs.offsets.tolist(), refs.sizes.tolist(), strict=True))
            chunks = [(tar, spans[i:i + 256], out and str(out / f"{i}.bin"))
                      for i in range(0, len(spans), 256)]
            with multiprocessing.get_context("forkserver").Pool(args.jobs) as workers:
                sum(workers.imap_unordered(_decode_chunk, chunks))

        from dataset_registry.sources.members import read_members

        unchecked = refs.slice(0, n)
        unchecked.digests = None  # the same members, not checked against their index

        def read(members: object) -> None:  # how every recipe reads (members.read_members)
            for _ in read_members(members):  # type: ignore[arg-type]
                pass

        phases: dict[str, dict[str, float]] = {}

        def build(name: str) -> None:
            built = Registry.open(str(work)).resolve(name, jobs=args.jobs)
            phases[name] = built.marker.built["phases"]

        verdicts = ImageChecks(reg.state_dir).folder

        def clean(name: str) -> None:  # untimed: no method pays for another's output or dirty
            remove_artifacts(work)
            if not name.endswith("-warm"):  # warm: the cold build just before left them
                shutil.rmtree(verdicts, ignore_errors=True)
            (work / "copy.bin").unlink(missing_ok=True)
            shutil.rmtree(work / "decoded", ignore_errors=True)
            (work / "decoded").mkdir()
            os.sync()
            time.sleep(args.settle)

        best: dict[str, float] = {}
        for _ in range(args.repeat):  # interleaved, the best of each
            for name, fn in (("copy", copy), ("decode", decode),
                             ("decode+write", lambda: decode(work / "decoded")),
                             ("read", lambda: read(unchecked)),
                             ("read-checked", lambda: read(refs)),
                             ("recordio", lambda: build("recordio")),
                             ("recordio-warm", lambda: build("recordio")),
                             ("wds", lambda: build("wds")),
                             ("wds-warm", lambda: build("wds")),
                             ("tfrecord", lambda: build("tfrecord")),
                             ("tfrecord-warm", lambda: build("tfrecord")),
                             ("recordio-unchecked", lambda: build("recordio-unchecked")),
                             ("wds-unchecked", lambda: build("wds-unchecked")),
                             ("tfrecord-unchecked", lambda: build("tfrecord-unchecked"))):
                clean(name)
                start = time.perf_counter()
                fn()
                best[name] = min(best.get(name, float("inf")), time.perf_counter() - start)
        print(f"{n} images in a tar of {args.classes} class tars, mean {mean_kib(images):.1f} "
              f"KiB ({payload / 2**20:.0f} MiB), {args.jobs} worker(s), {cpu_count()} cores, "
              f"best of {args.repeat}")
        print(f"{'method':44s} {'seconds':>8s} {'MB/s':>8s} {'img/s':>8s}")
        for name, label in (("copy", "plain sequential copy of the member bytes"),
                            ("decode", "bare check-decode loop (the checked floor)"),
                            ("decode+write", "check-decode loop writing what it checked"),
                            ("read", "read_members, no xxh3 check (one process)"),
                            ("read-checked", "read_members, each checked vs its index xxh3"),
                            ("recordio", "recordio pass-through (whole resolve)"),
                            ("wds", "webdataset shards (whole resolve)"),
                            ("tfrecord", "tfrecord, re-encoding hazards (whole resolve)"),
                            ("recordio-unchecked", "recordio, validate_images: false"),
                            ("wds-unchecked", "webdataset, validate_images: false"),
                            ("tfrecord-unchecked", "tfrecord, validate_images: false"),
                            ("recordio-warm", "recordio, checks known (warm)"),
                            ("wds-warm", "webdataset, checks known (warm)"),
                            ("tfrecord-warm", "tfrecord, checks known (warm)")):
            t = best[name]
            print(f"{label:44s} {t:8.2f} {payload / t / 1e6:8.0f} {n / t:8.0f}")
        for name in ("recordio", "wds", "tfrecord"):
            print(f"  {name} phases (last run, s): "
                  + ", ".join(f"{k} {v:.2f}" for k, v in phases[name].items()))
        print(f"ratio recordio / copy  {best['copy'] / best['recordio']:.2f}  (target >= 0.7)")
        print(f"ratio wds / copy       {best['copy'] / best['wds']:.2f}  (target >= 0.7)")
        for name in ("recordio", "wds"):  # what the default image checks cost, side by side
            print(f"ratio {name} unchecked / copy  {best['copy'] / best[name + '-unchecked']:.2f}"
                  f"  (checks cost {best[name] / best[name + '-unchecked']:.2f}x)")
        for name in ("recordio", "wds", "tfrecord"):
            print(f"ratio {name} / decode floor  {best['decode'] / best[name]:.2f}"
                  f"  (target >= 0.9; of decode+write {best['decode+write'] / best[name]:.2f})")
        print(f"{'checked cold, warm, unchecked (s)':44s} {'cold':>8s} {'warm':>8s} "
              f"{'unchecked':>9s} {'warm/unch':>9s} {'cold/unch':>9s}")
        for name in ("recordio", "wds", "tfrecord"):  # throughput ratios: 1.0 costs nothing
            cold, warm, bare = (best[name + k] for k in ("", "-warm", "-unchecked"))
            print(f"{name + ' (warm target >= 0.9)':44s} {cold:8.2f} {warm:8.2f} {bare:9.2f} "
                  f"{bare / warm:9.2f} {bare / cold:9.2f}")
        print(f"tfrecord images/s per core: {n / best['tfrecord'] / args.jobs:.0f}")
        print(f"ratio read checked / unchecked  {best['read-checked'] / best['read']:.2f}  "
              "(what never serving a stale key costs a recipe's reads)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def remove_artifacts(work: Path) -> None:
    """The store's artifacts removed, and the catalog told (untimed): else the next timed
    build's catalog upkeep would delete the rows of what the last one built."""
    from dataset_registry.engine import catalog_sync

    shutil.rmtree(work / "registry", ignore_errors=True)
    catalog_sync.upkeep(Registry.open(str(work)), strict=True)


def _decode_chunk(task: tuple[str, list[tuple[int, int]], str | None]) -> int:
    """Read and check-decode one chunk of members (a pool worker; opens the tar itself),
    and write their bytes into the file `out` where one is given (as DECODE does)."""
    from dataset_registry.recipes.imaging import check_image

    tar, spans, out = task
    checked = []  # (kept only to be written)
    with open(tar, "rb") as f:
        for offset, size in spans:
            data = os.pread(f.fileno(), size, offset)
            check_image(data, "bench")
            if out:
                checked.append(data)
    if out:  # with the calls a build's task makes to write its region
        from dataset_registry.core.filewrites import pwrite_all

        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            pwrite_all(fd, checked, 0)
        finally:
            os.close(fd)
    return len(spans)


MEASURE = """
import json, resource, sys
from dataset_registry import Registry
if __name__ == "__main__":
    ds = Registry.open(sys.argv[1]).resolve(sys.argv[2], jobs=int(sys.argv[3]))
    print(json.dumps({"rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      "files": ds.marker.files, "seconds": ds.marker.built["seconds"]}))
"""


def memory(sizes: list[int], jobs: int, classes: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-shards-mem-"))
    try:
        small = pool(200, 64, 48, cpu_count())
        (work / "measure.py").write_text(MEASURE)
        rows = []
        for n in sizes:
            root = work / f"r{n}"
            # every class required where the tar has all 1000 (a smoke run has fewer)
            write_manifest(root, require_all_classes=classes == 1000)
            tar = write_train_tar(str(work / f"train-{n}.tar"), small, classes, n // classes)
            Registry.open(str(root)).set_source("train", tar)
            for recipe in ("recordio", "wds"):
                out = subprocess.run([sys.executable, str(work / "measure.py"), str(root), recipe,
                                      str(jobs)], capture_output=True, text=True, check=True)
                rows.append((n, recipe, json.loads(out.stdout.strip().splitlines()[-1])))
            shutil.rmtree(root / "registry")
            os.remove(tar)
        print(f"## memory: train tars of {classes} class tars, 64x48 images, {jobs} worker(s)")
        print(f"{'images':>9s} {'recipe':>9s} {'coordinator peak RSS MiB':>25s} {'build s':>8s}")
        for n, recipe, r in rows:
            print(f"{n:9d} {recipe:>9s} {r['rss_kib'] / 1024:25.1f} {r['seconds']:8.1f}")
        for recipe in ("recordio", "wds"):
            (n0, _, a), (n1, _, b) = [r for r in rows if r[1] == recipe][::len(sizes) - 1][:2]
            per = (b["rss_kib"] - a["rss_kib"]) * 1024 / (n1 - n0)
            print(f"{recipe}: coordinator growth {per:.0f} bytes per record; at 1,281,167 "
                  f"records: {(a['rss_kib'] * 1024 + per * (1281167 - n0)) / 2**30:.2f} GiB")
    finally:
        shutil.rmtree(work, ignore_errors=True)


SCRIPT = """
import sys, tarfile
import webdataset as wds
if __name__ == "__main__":
    with tarfile.open(sys.argv[1]) as outer, \\
            wds.ShardWriter(sys.argv[2] + "/s-%06d.tar", maxcount=1000, verbose=0) as sink:
        for label, cls in enumerate(m for m in outer if m.isfile()):
            with tarfile.open(fileobj=outer.extractfile(cls)) as inner:
                for m in inner:
                    if m.isfile():
                        sink.write({"__key__": m.name.rsplit(".", 1)[0], "cls": label,
                                    "jpg": inner.extractfile(m).read()})
"""


DECODE = """
import json, multiprocessing, os, sys
from dataset_registry.recipes.imaging import check_image
def chunk(task):  # as bench_shards._decode_chunk
    tar, spans, out = task
    checked = []
    with open(tar, "rb") as f:
        for offset, size in spans:
            data = os.pread(f.fileno(), size, offset)
            check_image(data, "bench")
            if out:
                checked.append(data)
    if out:
        from dataset_registry.core.filewrites import pwrite_all
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            pwrite_all(fd, checked, 0)
        finally:
            os.close(fd)
    return len(spans)
if __name__ == "__main__":
    tar, spans = sys.argv[1], json.load(open(sys.argv[2]))
    out = sys.argv[4] if len(sys.argv) > 4 else None
    chunks = [(tar, spans[i:i + 256], out and f"{out}/{i}.bin") for i in range(0, len(spans), 256)]
    with multiprocessing.get_context("forkserver").Pool(int(sys.argv[3])) as workers:
        sum(workers.imap_unordered(chunk, chunks))
"""


def small(count: int, jobs: int, quality: int, repeat: int) -> None:
    """The small section: fresh processes, best of `repeat`, interleaved."""
    work = Path(tempfile.mkdtemp(prefix="bench-shards-small-"))
    try:
        # every photo distinct: a build checks each content once (engine/checkfirst.py),
        # so repeated photos would flatter it against the bare loop, which decodes each
        images = pool(count, 500, 375, cpu_count(), quality=quality)
        per_class = max(1, count // 10)
        tar = write_train_tar(str(work / "train.tar"), images, 10, per_class)
        write_manifest(work, require_all_classes=False, shards=min(64, 10 * per_class))
        Registry.open(str(work)).set_source("train", tar)  # indexed here, untimed
        (work / "script.py").write_text(SCRIPT)
        best = fresh_processes(work, tar, {
            "script": [sys.executable, str(work / "script.py"), tar, str(work / "script-out")],
            "wds": resolve_command(work, jobs, "wds"),
            "wds-unchecked": resolve_command(work, jobs, "wds-unchecked")}, jobs, repeat)
        n, mib = 10 * per_class, os.path.getsize(tar) / 2**20
        print(f"## small: {n} photos of {mean_kib(images):.1f} KiB ({mib:.0f} MiB tar), "
              f"{jobs} worker(s), {cpu_count()} cores, fresh processes, best of {repeat}")
        print(f"{'method':52s} {'seconds':>8s} {'img/s':>8s} {'script/this':>11s}")
        for name, label in (("script", "tarfile + webdataset.ShardWriter script, 1 process"),
                            ("decode", "bare check-decode loop, `jobs` processes"),
                            ("wds", "registry resolve wds, checked, cold"),
                            ("wds-unchecked", "registry resolve wds, validate_images: false")):
            t = best[name]
            print(f"{label:52s} {t:8.2f} {n / t:8.0f} {best['script'] / t:11.2f}")
        print(f"ratio wds checked cold / decode floor  {best['decode'] / best['wds']:.2f}")
        print("target: the checked resolve faster than the script (script/this > 1)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def whole(classes: int, per_class: int, distinct: int, jobs: int, quality: int,
          repeat: int, settle: float = 0.0) -> None:
    """The whole section: each recipe's checked, cold `registry resolve` as the whole
    command a user runs, against the bare check loop as a whole process (and that loop
    writing what it checked)."""
    work = Path(tempfile.mkdtemp(prefix="bench-shards-whole-"))
    try:
        images = pool(distinct, 500, 375, cpu_count(), quality=quality)
        tar = write_train_tar(str(work / "train.tar"), images, classes, per_class)
        n = classes * per_class
        write_manifest(work, require_all_classes=False, shards=min(64, n))
        Registry.open(str(work)).set_source("train", tar)  # indexed here, untimed
        recipes = ("recordio", "wds", "tfrecord")
        spent: dict[str, list[float]] = {name: [] for name in recipes}
        best = fresh_processes(work, tar, {name: resolve_command(work, jobs, name)
                                           for name in recipes}, jobs, repeat, written=True,
                               settle=settle, spent=spent)
        print(f"## whole: {n} images in a tar of {classes} class tars, {jobs} worker(s), "
              f"{cpu_count()} cores, fresh processes, best of {repeat}")
        print(f"{'method':52s} {'seconds':>8s} {'img/s':>8s} {'floor/this':>10s} "
              f"{'(+write)/this':>13s}")
        for name, label in (("decode", "bare check-decode loop, `jobs` processes"),
                            ("decode+write", "the same loop writing what it checked"),
                            *((r, f"registry resolve {r}, checked, cold") for r in recipes)):
            t = best[name]
            print(f"{label:52s} {t:8.2f} {n / t:8.0f} {best['decode'] / t:10.2f} "
                  f"{best['decode+write'] / t:13.2f}")
        print("target: each checked cold resolve at >= 0.9 of the bare check loop "
              "(floor/this); (+write)/this: of the loop that also writes its output")
        print("where each best run's seconds went (its marker's phases; before: interpreter, "
              "imports, manifests, keys, the workers' start; plan: reading the inputs too; "
              "index: the file table; after: publishing, the pool's shutdown, the catalog, "
              "the exit)")
        print(f"{'':52s} " + " ".join(f"{column:>6s}" for column in SPENT))
        for name in recipes:
            print(f"{'registry resolve ' + name:52s} " +
                  " ".join(f"{t:6.2f}" for t in spent[name]))
    finally:
        shutil.rmtree(work, ignore_errors=True)


SPENT = ("before", "plan", "checks", "tasks", "finish", "index", "after")  # (spent_in)


def spent_in(work: Path, name: str, started: float, seconds: float) -> list[float]:
    """The `SPENT` of dataset `name` in `work`'s store, built by a process that started at
    `started` (time.time()) and took `seconds`: its marker's phases, and what they leave."""
    reg = Registry.open(str(work))
    marker = reg.resolver.store.marker(reg.key(name))
    if marker is None:
        return []
    built = marker.built
    before = built["at"] - started
    phases = [built["phases"].get(p, 0.0) for p in SPENT[1:-1]]
    return [before, *phases, seconds - before - built["seconds"]]


def resolve_command(work: Path, jobs: int, name: str) -> list[str]:
    return [sys.executable, "-m", "dataset_registry.cli", "resolve", "--root", str(work),
            "--jobs", str(jobs), name]


def fresh_processes(work: Path, tar: str, commands: dict[str, list[str]], jobs: int,
                    repeat: int, *, written: bool = False, settle: float = 0.0,
                    spent: dict[str, list[float]] | None = None) -> dict[str, float]:
    """Best seconds of each command as a whole process and of the bare check loop over the
    train source's members in `jobs` processes ("decode"; `written`: also that loop
    writing what it checked, "decode+write"), interleaved, after a first round untimed: as
    an installed package runs, bytecode compiled once (kept under `work`, not in the
    tree), even where PYTHONDONTWRITEBYTECODE is set. Before each, the store and every
    output folder are emptied and the check verdicts removed (every checked build is
    cold), then `settle` seconds pass. `spent`: the datasets whose best run's `spent_in`
    to fill in, by name."""
    from dataset_registry.sources.index import member_sets

    refs = member_sets(Registry.open(str(work)).resolver.source_info("train"))["train"]
    (work / "spans.json").write_text(json.dumps(list(zip(refs.offsets.tolist(),
                                                         refs.sizes.tolist(), strict=True))))
    (work / "decode.py").write_text(DECODE)
    decode = [sys.executable, str(work / "decode.py"), tar, str(work / "spans.json"), str(jobs)]
    decoded = work / "decoded"
    commands = {"decode": decode,
                **({"decode+write": [*decode, str(decoded)]} if written else {}), **commands}
    verdicts = ImageChecks(Registry.open(str(work)).state_dir).folder
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    best: dict[str, float] = {}
    for round_ in range(repeat + 1):
        for name, command in commands.items():
            remove_artifacts(work)
            shutil.rmtree(verdicts, ignore_errors=True)
            for outputs in (work / "script-out", decoded):  # the script's, the loop's
                shutil.rmtree(outputs, ignore_errors=True)
                outputs.mkdir()
            os.sync()
            if round_:  # (the first round is untimed)
                time.sleep(settle)
            started, start = time.time(), time.perf_counter()
            subprocess.run(command, check=True, capture_output=True, env=env)
            took = time.perf_counter() - start
            if round_ and took < best.get(name, float("inf")):
                best[name] = took
                if spent is not None and name in spent:  # (its best run's, or none)
                    spent[name] = spent_in(work, name, started, took)
    return best


if __name__ == "__main__":
    sys.exit(main())
