"""webdataset shards, read back with the webdataset package."""

import tarfile
from pathlib import Path

from dataset_registry.sources.index import member_sets
from dataset_registry.sources.members import read_member

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


