"""webdataset shards, read back with the webdataset package."""

import tarfile
from pathlib import Path

import numpy as np
import pytest

from dataset_registry import Registry
from dataset_registry.core import keys
from dataset_registry.formats.wds import sample_bytes
from dataset_registry.recipes import webdataset
from dataset_registry.recipes.shards import Classified
from dataset_registry.recipes.webdataset import (
    image_extension,
    sample_key,
    sample_sizes,
    shard_cuts,
    whole_key,
)
from dataset_registry.sources.index import member_sets
from dataset_registry.sources.members import MemberRef, MemberSet, read_member

from ..conftest import make_tar, run_cli, write_manifest
from ..realkit import digits, png
from .shardkit import TRUTH, registry


def test_webdataset_shards_read_back_with_the_webdataset_package(tmp_path, synth_small):
    import webdataset as wds

    reg = registry(tmp_path, synth_small, "webdataset",
                   "split: val, require_all_classes: false, shard_count: 128")
    ds = reg.resolve("out", jobs=2)
    shards = sorted(Path(ds.path).glob("imagenet-val-*.tar"))
    assert [s.name for s in shards] == [f"imagenet-val-{i:06d}.tar" for i in range(5)]
    val = member_sets(reg.resolver.source_info("val"))["val"]
    seen = []
    for shard in shards:
        for sample in wds.WebDataset(str(shard), shardshuffle=False):
            name = sample["__key__"] + ".JPEG"
            assert int(sample["cls"]) == int(TRUTH[name])
            assert sample["jpg"] == read_member(val.get(name))
            seen.append(name)
    assert sorted(seen) == sorted(val.names) and len(seen) == 600
    rows = reg.sql("SELECT path, byte_offset, member FROM files WHERE key = ? AND member = "
                   "'ILSVRC2012_val_00000293.JPEG'", [ds.key]).rows
    assert len(rows) == 1 and rows[0][0].startswith("imagenet-val-")
    with open(Path(ds.path) / rows[0][0], "rb") as f:
        f.seek(rows[0][1])
        assert f.read(100).startswith(b"ILSVRC2012_val_00000293.cls")


def test_webdataset_byte_limit_and_determinism(tmp_path, synth_small):
    digests, counts = set(), set()
    for jobs in (1, 2):
        reg = registry(tmp_path / str(jobs), synth_small, "webdataset",
                       "split: val, require_all_classes: false, shard_bytes: 400000")
        ds = reg.resolve("out", jobs=jobs)
        shards = sorted(Path(ds.path).glob("*.tar"))
        for shard in shards:  # within the limit, or one sample larger than it by itself
            with tarfile.open(shard) as tf:
                samples = len(tf.getnames()) // 2
            assert shard.stat().st_size <= 400000 or samples == 1
        assert len(shards) > 2 and any(s.stat().st_size > 400000 for s in shards)
        digests.add(ds.digest)
        counts.add(len(shards))
    assert len(digests) == 1 and len(counts) == 1




@pytest.mark.parametrize("limit", ["shard_count: 300", "shard_bytes: 400000"])
def test_shards_past_one_task_are_written_in_regions_with_the_bytes_of_one_stream(
        tmp_path, synth_small, monkeypatch, limit):
    """Shards of more than PART samples are written by several tasks, each its region:
    the same files, digest and rows as each shard streamed by one task, on one worker or
    two, read back whole by the webdataset package."""
    import webdataset as wds

    built, default = {}, webdataset.PART
    hashed = []  # files the coordinator read back whole to hash
    monkeypatch.setattr(keys, "hash_file", lambda path, *a, real=keys.hash_file:
                        hashed.append(path) or real(path, *a))
    for part, jobs in ((10**9, 1), (50, 1), (50, 2), (default, 2)):
        monkeypatch.setattr(webdataset, "PART", part)
        reg = registry(tmp_path / f"{part}-{jobs}", synth_small, "webdataset",
                       f"split: val, require_all_classes: false, {limit}")
        node = reg.manifests.get("out")
        tasks = webdataset.WebDataset.plan(node.params, reg.resolver.inputs(node)[0])
        regions = [t.region for t in tasks if t.region is not None]
        shard_sizes = {t.name: 0 for t in tasks}
        for t in tasks:
            shard_sizes[t.name] += len(t)
        assert bool(regions) == (max(shard_sizes.values()) > part)  # (the checks are on)
        assert all(r.size > 0 and (r.first == 0) == (r.part == 0) for r in regions)
        hashed.clear()
        ds = reg.resolve("out", jobs=jobs)
        assert hashed == []  # the regions were hashed as their tasks finished
        rows = reg.sql("SELECT path, size, xxh3, byte_offset, record, member FROM files "
                       "WHERE key = ? ORDER BY path, record NULLS FIRST", [ds.key]).rows
        built[(part, jobs)] = (ds.key, ds.digest, rows)
        if part == 50 and jobs == 2:
            samples = [s["__key__"] for shard in sorted(Path(ds.path).glob("*.tar"))
                       for s in wds.WebDataset(str(shard), shardshuffle=False)]
            assert len(samples) == len(set(samples)) == 600
    assert len({repr(b) for b in built.values()}) == 1, list(built)
    assert len(built[(50, 2)][2]) == 600 + len([r for r in built[(50, 2)][2] if r[4] is None])


def test_shards_are_written_in_regions_only_where_tasks_decode_and_cannot_skip(
        tmp_path, synth_small, monkeypatch):
    """Regions pay where the tasks decode their images (checks on, verdicts unknown), and
    hold only where no image can be left out: else each shard is one task."""
    from dataset_registry.engine.imagechecks import ImageChecks

    monkeypatch.setattr(webdataset, "PART", 50)

    def regions(reg) -> bool:  # planned as a build plans: the known verdicts marked first
        node = reg.manifests.get("out")
        inputs = reg.resolver.inputs(node)[0]
        ImageChecks(reg.state_dir).mark(inputs.images)
        return any(t.region is not None for t in webdataset.WebDataset.plan(node.params, inputs))

    for params, planned in (("on_error: fail", True), ("on_error: skip", False),
                            ("validate_images: false", False)):
        reg = registry(tmp_path / params.replace(": ", "-"), synth_small, "webdataset",
                       f"split: val, require_all_classes: false, {params}")
        assert regions(reg) == planned, params
    warm = registry(tmp_path / "warm", synth_small, "webdataset",
                    "split: val, require_all_classes: false")
    assert regions(warm) is True  # (its own state folder: no verdicts yet)
    ImageChecks(warm.state_dir).add(
        (ref.xxh3, "") for ref in member_sets(warm.resolver.source_info("val"))["val"])
    assert regions(warm) is False


def cut_in_turn(need: list[int], count: int, max_bytes: int | None) -> list[int]:
    """Shards filled one sample at a time, as the recipe always cut them (the reference)."""
    def on_disk(content: int) -> int:
        return -(-content // tarfile.RECORDSIZE) * tarfile.RECORDSIZE

    cuts, start, size = [0], 0, 2 * tarfile.BLOCKSIZE
    for i, bytes_ in enumerate(need):
        if i - start >= count or (max_bytes is not None and i > start and
                                  on_disk(size + bytes_) > max_bytes):
            cuts.append(i)
            start, size = i, 2 * tarfile.BLOCKSIZE
        size += bytes_
    return [*cuts, len(need)] if len(need) > start else cuts


@pytest.mark.parametrize("seed", range(24))
def test_shards_are_cut_as_filling_them_one_sample_at_a_time(seed):
    rng = np.random.default_rng(seed)
    need = (rng.integers(1, 200, int(rng.integers(0, 400))) * 512).tolist()
    count = int(rng.integers(1, 50))
    max_bytes = None if seed % 4 == 0 else int(rng.integers(1, 600_000))
    assert shard_cuts(np.array(need, dtype=np.int64), count, max_bytes) == \
        cut_in_turn(need, count, max_bytes)


@pytest.mark.parametrize("longest", [20, 95, 96, 97, 150])
def test_sample_sizes_are_sample_bytes_of_each_sample(longest):
    """By arrays or sample by sample (a name near or past tar's 100 bytes: GNU long-name
    blocks), each the sum of its entries' `sample_bytes`, whole keys or not."""
    names = sorted({f"c{k % 3}/{'é' * (k % 4)}{'x' * (longest - 10 - k % 7)}{k}.jpeg"
                    for k in range(40)} | {"c0/short.png"})
    refs = [MemberRef(n, "/nowhere", 0, 700 + 613 * i, n, "src", n.split("/")[0])
            for i, n in enumerate(names)]
    members = MemberSet.from_refs("train", "here", refs, "/nowhere")
    positions = np.arange(len(names), dtype=np.int64)[::-1].copy()
    labels = np.array([int(n[1]) * 500 for n in names], dtype=np.int16)[positions]
    c = Classified(members, positions, labels, [], None)
    for whole in (False, True):
        key_of = whole_key if whole else sample_key
        expected = [sample_bytes(key_of(names[p]), {
            "cls": len(str(k)), image_extension(names[p], "here"): 700 + 613 * p})
            for p, k in zip(positions.tolist(), labels.tolist(), strict=True)]
        taken = members.names.take(positions)
        assert sample_sizes(c, taken, whole, None).tolist() == expected
        assert sample_sizes(c, taken, whole, None, taken.tolist()).tolist() == expected


def test_an_image_named_cls_exits_2_naming_it(tmp_path):
    """A labels table may list any file as an image: one named `.cls` would take its
    sample's label entry (the label lost, the shard plan a header short): refused."""
    images, _ = digits()
    make_tar(tmp_path / "pets.tar", {"x/1.cls": png(images[0]), "x/2.png": png(images[1]),
                                     "labels.csv": b"file_name,label\nx/1.cls,cat\n"
                                                   b"x/2.png,dog\n"})
    write_manifest(tmp_path, """
sources:
  - {name: pets, layout: files}
datasets:
  - {name: out, recipe: webdataset, inputs: {images: pets}, params: {split: train}}
""")
    reg = Registry.open(str(tmp_path))
    reg.set_source("pets", str(tmp_path / "pets.tar"))
    out = run_cli("resolve", "out", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert "'x/1.cls' has the extension .cls, which its sample's label entry takes" \
        in out.stderr
    assert list(reg.store.committed()) == []


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_bad_image_in_a_region_fails_the_build_naming_it_and_publishes_nothing(
        tmp_path, monkeypatch, jobs):
    from dataset_registry import BadImageError

    from .test_imagecheck import BAD, assert_nothing_published, params, train_source

    monkeypatch.setattr(webdataset, "PART", 2)  # shards of 4 in regions of 2 (no tail)
    monkeypatch.setattr(webdataset, "TAIL", 0)
    source, _ = train_source(tmp_path, {"truncated": BAD["truncated"][0]})
    reg = registry(tmp_path / "p", source, "webdataset", params("webdataset", "train"))
    node = reg.manifests.get("out")
    tasks = webdataset.WebDataset.plan(node.params, reg.resolver.inputs(node)[0])
    assert all(t.region is not None and len(t) <= 2 for t in tasks)
    with pytest.raises(BadImageError) as raised:
        reg.resolve("out", jobs=jobs)
    assert "_truncated.JPEG (source " in str(raised.value)
    assert_nothing_published(reg)
