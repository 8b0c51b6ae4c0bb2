"""Image checks paid once: a source's images are decoded by the first checked build, and
later builds from it take each content's verdict from the state folder's cache, with the
same skips, the same failures and the same bytes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from dataset_registry import BadImageError, RecipeError
from dataset_registry.engine.imagechecks import ImageChecks, VerdictParts
from dataset_registry.recipes import imagecheck

from .shardkit import registry
from .test_imagecheck import BAD, SHARD_RECIPES, params, train_source

BAD_ONES = {kind: BAD[kind][0] for kind in ("truncated", "empty", "random")}
GOOD = 3 * 3 + 1  # train_source's good JPEGs and its 16-bit PNG


@pytest.fixture
def decodes(monkeypatch) -> list[bytes]:
    """Every image the checks decode (builds run inline: jobs=1)."""
    seen: list[bytes] = []
    check = imagecheck.check_image

    def counting(data: bytes, name: str) -> None:
        seen.append(data)
        check(data, name)

    monkeypatch.setattr(imagecheck, "check_image", counting)
    return seen


def skips(reg, key: str) -> list[tuple[str, str]]:
    return reg.sql("SELECT member, reason FROM skipped WHERE key = ? ORDER BY member",
                   [key]).fetchall()


def state(root: Path) -> Path:
    return root / ".registry-state" / "imagechecks"


@pytest.mark.parametrize("recipe", SHARD_RECIPES)
def test_a_warm_build_decodes_nothing_and_writes_and_skips_the_same(tmp_path, decodes, recipe):
    """Cold in one project; the same manifest in another, given the first's verdicts:
    nothing decoded, the same digest, the same skips listed by name and reason."""
    source, _ = train_source(tmp_path, BAD_ONES)
    p = params(recipe, "train", ", on_error: skip")
    cold = registry(tmp_path / "cold", source, recipe, p)
    first = cold.resolve("out", jobs=1)
    assert len(decodes) == GOOD + len(BAD_ONES)
    assert first.marker.skipped == len(BAD_ONES)

    warm = registry(tmp_path / "warm", source, recipe, p)
    shutil.copytree(state(tmp_path / "cold"), state(tmp_path / "warm"))
    decodes.clear()
    second = warm.resolve("out", jobs=1)
    assert decodes == []
    assert (second.key, second.digest) == (first.key, first.digest)
    assert skips(warm, second.key) == skips(cold, first.key)
    assert len(skips(warm, second.key)) == len(BAD_ONES)


def test_another_variant_of_the_same_source_decodes_nothing(tmp_path, decodes):
    source, _ = train_source(tmp_path, BAD_ONES)
    reg = registry(tmp_path, source, "webdataset",
                   params("webdataset", "train", ", on_error: skip"))
    reg.resolve("out", jobs=1)
    assert len(decodes) == GOOD + len(BAD_ONES)
    other = registry(tmp_path, source, "webdataset",
                     "split: train, require_all_classes: false, shard_count: 2, "
                     "on_error: skip")
    decodes.clear()
    built = other.resolve("out", jobs=1)
    assert built.built_now and decodes == []
    assert built.marker.skipped == len(BAD_ONES)


def test_a_known_refusal_still_fails_the_build_naming_the_member(tmp_path, decodes):
    source, _ = train_source(tmp_path, {"truncated": BAD["truncated"][0]})
    skip = registry(tmp_path, source, "tfrecord", params("tfrecord", "train", ", on_error: skip"))
    kept = skip.resolve("out", jobs=1).key
    with pytest.raises(BadImageError) as cold:
        registry(tmp_path / "cold", source, "tfrecord", params("tfrecord", "train")
                 ).resolve("out", jobs=1)
    fail = registry(tmp_path, source, "tfrecord", params("tfrecord", "train"))
    decodes.clear()
    with pytest.raises(BadImageError) as warm:
        fail.resolve("out", jobs=1)
    assert str(warm.value) == str(cold.value)
    assert "_truncated.JPEG (source " in str(warm.value)
    assert decodes == []
    assert list(fail.store.committed()) == [kept]  # nothing of the failed build published


def test_unchecked_builds_neither_read_nor_add_verdicts(tmp_path, decodes):
    source, _ = train_source(tmp_path, {})
    reg = registry(tmp_path, source, "webdataset",
                   params("webdataset", "train", ", validate_images: false"))
    reg.resolve("out", jobs=1)
    assert decodes == [] and not state(tmp_path).exists()


def test_a_corrupt_cache_file_is_ignored_and_removed(tmp_path, decodes):
    source, _ = train_source(tmp_path, BAD_ONES)
    p = params("byclass", "train", ", on_error: skip")
    cold = registry(tmp_path / "cold", source, "byclass", p)
    first = cold.resolve("out", jobs=1)
    (file,) = ImageChecks(str(tmp_path / "cold" / ".registry-state")).files()
    damaged = registry(tmp_path / "damaged", source, "byclass", p)
    os.makedirs(state(tmp_path / "damaged"))
    Path(state(tmp_path / "damaged") / os.path.basename(file)).write_bytes(b"PK\3\4 not a zip")
    decodes.clear()
    again = damaged.resolve("out", jobs=1)
    assert len(decodes) == GOOD + len(BAD_ONES)  # decoded again, as if there were no cache
    assert again.digest == first.digest and again.marker.skipped == len(BAD_ONES)
    # the damaged file is gone, the new verdicts kept
    files = ImageChecks(str(tmp_path / "damaged" / ".registry-state")).files()
    assert len(files) == 1 and os.path.basename(file) not in files[0]


def test_verdicts_are_kept_by_content_not_by_name(tmp_path):
    """A refusal is kept without the member's name, and read back with the other's."""
    checks = ImageChecks(str(tmp_path))
    ok, bad = "0" * 31 + "1", "f" * 32
    assert checks.add([(ok, ""), (bad, "corrupt or truncated image: broken data stream")]) == 2
    known = checks.load()
    assert known.refused == {1: "corrupt or truncated image: broken data stream"}
    assert known.find(np.frombuffer(bytes.fromhex(ok + bad), "S16")).tolist() == [0, 1]
    assert imagecheck.why_refused("a/b.JPEG (source 0123): refused: bomb",
                                  "a/b.JPEG (source 0123)") == "refused: bomb"
    # a message naming the member past its prefix would misname another member: not kept
    assert imagecheck.why_refused("x (source 1): x (source 1) is bad", "x (source 1)") is None
    assert imagecheck.why_refused("no prefix at all", "x (source 1)") is None


@pytest.mark.parametrize("executor", [None, "dask://local"], ids=["pool", "dask"])
def test_verdicts_travel_in_tasks_and_part_files_to_and_from_workers(tmp_path, executor):
    """Workers in other processes never read the state folder: a cold build's verdicts
    come back in its part files, and a warm one's tasks (which carried them) decode
    nothing, so add none."""
    source, _ = train_source(tmp_path, BAD_ONES)
    reg = registry(tmp_path, source, "webdataset",
                   params("webdataset", "train", ", on_error: skip"))
    checks = ImageChecks(reg.state_dir)
    first = reg.resolve("out", jobs=2, executor=executor)
    (file,) = checks.files()
    known = checks.load()
    assert len(known.digests) == GOOD + len(BAD_ONES) and len(known.refused) == len(BAD_ONES)
    other = registry(tmp_path, source, "webdataset",
                     "split: train, require_all_classes: false, shard_count: 3, "
                     "on_error: skip")
    second = other.resolve("out", jobs=2, executor=executor)
    assert second.built_now and checks.files() == [file]  # no task decoded an image
    assert skips(other, second.key) == [(m, r) for m, r in skips(reg, first.key)]


@pytest.mark.parametrize("recipe", SHARD_RECIPES)
def test_a_tasks_verdicts_are_read_as_its_result_comes_in(tmp_path, monkeypatch, recipe):
    """Not all after the last task, while the workers stand idle: by then every task's
    part was read, and the end reads no part again."""
    source, _ = train_source(tmp_path, BAD_ONES)
    reg = registry(tmp_path, source, recipe, params(recipe, "train", ", on_error: skip"))
    seen: dict[str, int] = {}
    rest = VerdictParts.rest

    def at_the_end(self: VerdictParts) -> list[tuple[np.ndarray, dict[int, str]]]:
        seen["read"], seen["parts"] = sum(len(d) for d, _ in self.parts), len(self.done)
        parts = rest(self)
        seen["in all"] = sum(len(d) for d, _ in parts)
        return parts

    monkeypatch.setattr(VerdictParts, "rest", at_the_end)
    reg.resolve("out", jobs=1)
    assert seen["read"] == seen["in all"] == GOOD + len(BAD_ONES) and seen["parts"] >= 1
    known = ImageChecks(reg.state_dir).load()
    assert len(known.digests) == GOOD + len(BAD_ONES) and len(known.refused) == len(BAD_ONES)


@pytest.mark.parametrize("refusal", [None, "truncated", 'cannot decode: "x", at 3\nthen'])
def test_a_part_file_reads_as_its_csv_rows(tmp_path, refusal):
    """A task's verdicts, as `Output.image_checked` writes them, read back (all usable: at
    once) as Python's csv reader reads the file row by row."""
    import csv

    import xxhash

    from dataset_registry.artifact.output import Output
    from dataset_registry.engine.imagechecks import _part_read

    out = Output(str(tmp_path), "000000")
    digests = [xxhash.xxh3_128_hexdigest(str(i).encode()) for i in range(300)]
    for i, digest in enumerate(digests):
        out.image_checked(digest, refusal if refusal and i % 100 == 7 else "")
    out.close()
    [path] = (tmp_path / ".parts").glob("*.checked.csv")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    found, refused = _part_read(path.read_bytes())
    whole = found.tobytes().hex()  # (S16's tolist() would drop trailing zero bytes)
    assert [whole[i:i + 32] for i in range(0, len(whole), 32)] == [r[0] for r in rows] \
        == digests
    assert refused == {i: r[1] for i, r in enumerate(rows) if r[1]}
    assert len(refused) == (3 if refusal else 0)
    damaged = path.read_bytes().replace(digests[5].encode(), b"z" * 32)  # not hex
    with pytest.raises(ValueError):  # (the build keeps no verdict of a damaged part)
        _part_read(damaged)


def test_parts_a_crash_left_empty_add_no_verdict_and_fail_nothing(tmp_path):
    """Nothing is fsynced: a power cut can leave a task's verdicts file empty. The build's
    end keeps no verdict of it, and does not fail (the cache is only a cache)."""
    parts = tmp_path / "staging" / ".parts"
    parts.mkdir(parents=True)
    (parts / "t000000.checked.csv").write_bytes(b"")
    (parts / "t000001.checked.csv").write_bytes(b"\r\n")
    checks = ImageChecks(str(tmp_path / "state"))
    checks.collect_meanwhile(str(tmp_path / "staging")).join()
    assert len(checks.load().digests) == 0


def test_verdicts_kept_meanwhile_are_read_before_their_parts_go(tmp_path):
    """`collect_meanwhile` reads the parts before it returns (the build's `finalize` takes
    them out of staging next); its thread writes what they hold into the cache."""
    import threading

    import xxhash

    from dataset_registry.artifact.output import Output

    staging = tmp_path / "staging"
    out = Output(str(staging), "000000")
    digests = [xxhash.xxh3_128_hexdigest(str(i).encode()) for i in range(50)]
    for i, digest in enumerate(digests):
        out.image_checked(digest, "truncated" if i == 3 else "")
    out.close()
    checks = ImageChecks(str(tmp_path / "state"))
    parts_gone = threading.Event()
    keep = checks._keep
    checks._keep = lambda parts: (parts_gone.wait(10), keep(parts))[1]  # (held back)
    keeping = checks.collect_meanwhile(str(staging))
    shutil.rmtree(staging / ".parts")
    parts_gone.set()
    keeping.join()
    kept = checks.load()
    assert len(kept.digests) == 50
    assert list(kept.refused.values()) == ["truncated"]
    assert kept.find(np.frombuffer(bytes.fromhex(digests[3]), "S16"))[0] in kept.refused


def _slow_cache_writes(monkeypatch, seconds=0.3):
    import time

    keep = ImageChecks._keep

    def slow(self, parts):
        time.sleep(seconds)
        return keep(self, parts)

    monkeypatch.setattr(ImageChecks, "_keep", slow)


def _skipping_shards(tmp_path):
    """Webdataset shards of the train source with its bad images skipped (dataset `out`)."""
    source, _ = train_source(tmp_path, BAD_ONES)
    return registry(tmp_path, source, "webdataset",
                    params("webdataset", "train", ", on_error: skip"))


def test_the_verdicts_are_in_the_cache_once_the_build_is_published(tmp_path, monkeypatch):
    """Written on a thread while the file table is made, they are waited for: a slow
    cache write is there once the build returns."""
    _slow_cache_writes(monkeypatch)
    _skipping_shards(tmp_path).resolve("out", jobs=1)
    assert len(ImageChecks(str(tmp_path / ".registry-state")).load().digests) == \
        GOOD + len(BAD_ONES)


def test_a_failed_build_leaves_no_verdict_thread_running(tmp_path, monkeypatch):
    """A build failing after its verdicts' thread began (its finish raises) waits for it,
    as for the removal of its spent parts."""
    import threading

    from dataset_registry.recipes.webdataset import WebDataset

    _slow_cache_writes(monkeypatch)

    def failing(cls, *args, **kwargs):
        raise RuntimeError("finish failed")

    monkeypatch.setattr(WebDataset, "finish", classmethod(failing))
    with pytest.raises(RecipeError, match="finish failed"):
        _skipping_shards(tmp_path).resolve("out", jobs=1)
    assert [t for t in threading.enumerate() if t.name == "registry-image-checks"] == []
