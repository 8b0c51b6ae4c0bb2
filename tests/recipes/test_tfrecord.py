"""tfrecord shards in imagenet_to_gcs.py's layout, read back with the tfrecord package."""

import io
from pathlib import Path

from PIL import Image

from dataset_registry import Registry

from .shardkit import WNIDS, count_opens, registry


def test_tfrecord_layout_labels_and_hazards(tmp_path):
    from tfrecord.reader import tfrecord_loader

    from dataset_registry.domains.imagenet.synth import (
        CMYK_TRAIN,
        PNG_IMPOSTOR,
        SynthSpec,
        synthesize,
    )
    from dataset_registry.formats.tfrecord import iter_frames

    hazard_classes = sorted({n.split("_")[0] for n in [PNG_IMPOSTOR, *CMYK_TRAIN[:2]]})
    made = synthesize(str(tmp_path / "s"), SynthSpec(val_images=10, train_per_class=4,
                                                     width=32, height=24, kaggle=False,
                                                     wnids=tuple(hazard_classes)))
    reg = registry(tmp_path, made, "tfrecord", "require_all_classes: false, shards: 4")
    ds = reg.resolve("out", jobs=2)
    shards = sorted(Path(ds.path).glob("train-*"))
    assert [s.name for s in shards] == [f"train-{k:05d}-of-00004" for k in range(4)]
    total = 0
    for shard in shards:
        with open(shard, "rb") as f:
            total += len(list(iter_frames(f)))  # every length and data CRC checks
        for rec in tfrecord_loader(str(shard), None, description={
                "image/encoded": "byte", "image/class/label": "int",
                "image/class/synset": "byte", "image/filename": "byte", "image/width": "int"}):
            synset = bytes(rec["image/class/synset"]).decode()
            filename = bytes(rec["image/filename"]).decode()
            assert int(rec["image/class/label"][0]) == WNIDS.index(synset) + 1  # sorted1
            assert filename.startswith(synset + "_")
            im = Image.open(io.BytesIO(bytes(rec["image/encoded"])))
            assert im.format == "JPEG" and im.mode in ("RGB", "L")
            assert im.width == int(rec["image/width"][0])
    assert total == 3 * 4 + 3  # 4 per class, plus the PNG impostor and two CMYK images


def test_only_the_references_lists_are_re_encoded(tmp_path):
    """imagenet_to_gcs.py re-encodes the PNG impostor and the CMYK *train* names only: the
    4-channel ILSVRC2012_val_00019877.JPEG keeps its bytes, record for record."""
    from tfrecord.reader import tfrecord_loader

    from dataset_registry.domains.imagenet import synth
    from dataset_registry.domains.imagenet.synth import CMYK_VAL, SynthSpec

    from ..conftest import make_tar

    spec = SynthSpec(val_images=19_880, width=32, height=24)
    images = [im for im in synth.val_images(spec) if im.index >= 19_870]  # CMYK_VAL among them
    members = {im.name: synth.render(im, spec) for im in images}
    assert Image.open(io.BytesIO(members[CMYK_VAL])).mode == "CMYK"
    reg = registry(tmp_path, {"imagenet-val": str(make_tar(tmp_path / "val.tar", members))},
                   "tfrecord", "split: val, require_all_classes: false, shards: 2")
    ds = reg.resolve("out", jobs=1)
    got = {}
    for shard in sorted(Path(ds.path).glob("validation-*")):
        for rec in tfrecord_loader(str(shard), None, description={
                "image/encoded": "byte", "image/filename": "byte", "image/width": "int",
                "image/height": "int"}):
            got[bytes(rec["image/filename"]).decode()] = (
                bytes(rec["image/encoded"]), int(rec["image/width"][0]),
                int(rec["image/height"][0]))
    assert list(got) == sorted(members)  # validation stays sorted
    for name, (data, width, height) in got.items():
        assert data == members[name], name  # every val image: the original bytes
        assert (width, height) == Image.open(io.BytesIO(data)).size


def test_a_checked_image_is_opened_once_and_a_known_one_once(tmp_path, monkeypatch):
    """The check reads the header a record needs (format, width, height): a cold checked
    build opens each image once, not once to check and again for its size; a warm one
    (verdicts known, nothing decoded) opens it once for its size. Same shards either way,
    and the sizes recorded are the images' own (the 1/8-scale check decode shrinks im.size)."""
    from tfrecord.reader import tfrecord_loader

    from dataset_registry.domains.imagenet.synth import SynthSpec, synthesize

    made = synthesize(str(tmp_path / "s"), SynthSpec(val_images=4, train_per_class=3,
                                                     width=64, height=40, kaggle=False,
                                                     wnids=tuple(WNIDS[:2])))
    real_open = Image.open
    opened = count_opens(monkeypatch)
    reg = registry(tmp_path, made, "tfrecord", "require_all_classes: false, shards: 2")
    cold = Path(reg.resolve("out", jobs=1).path)
    assert opened == ["straight"] * 6  # 2 classes of 3 train images: plain JPEGs
    shards = {p.name: p.read_bytes() for p in cold.glob("train-*")}
    for shard in shards:
        for rec in tfrecord_loader(str(cold / shard), None, description={
                "image/encoded": "byte", "image/width": "int", "image/height": "int"}):
            width, height = (int(rec[k][0]) for k in ("image/width", "image/height"))
            assert (width, height) == real_open(io.BytesIO(bytes(rec["image/encoded"]))).size
            assert width > 16  # not the size of the 1/8-scale decode

    opened.clear()
    (tmp_path / "w").mkdir()
    warm = Registry.open(str(tmp_path), store=str(tmp_path / "w" / "store"))
    again = Path(warm.resolve("out", jobs=1).path)
    assert opened == ["open"] * 6  # its header only
    assert {p.name: p.read_bytes() for p in again.glob("train-*")} == shards
