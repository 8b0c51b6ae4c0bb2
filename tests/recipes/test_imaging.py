"""TIFFs beyond 8 bits, through real builds: 16-bit ones are read (and downscaled by their
high byte, as 16-bit PNGs are), a float32 one (Pillow's mode F) validates but is refused
where it must become 8-bit, and one Pillow cannot decode (float16, float64) is refused for
what it is, never as "corrupt or truncated"."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dataset_registry import BadImageError, Registry

from ..conftest import run_cli, write_manifest

MANIFEST = """
sources:
  - {name: imgs, layout: image-folder}
datasets:
  - name: split
    recipe: sample
    inputs: {images: imgs}
    params: {seed: 0, splits: {train: 0.5, val: 0.5}, on_error: ON_ERROR}
  - name: small
    recipe: downscale
    inputs: {train: split, val: split}
    params: {width: 4, height: 3, color: gray, require_all_classes: false, on_error: ON_ERROR}
"""


def halves(dtype: type, left: float, right: float) -> np.ndarray:
    """16 x 12 pixels: `left` in the left half, `right` in the right one."""
    pixels = np.full((12, 16), left, dtype)
    pixels[:, 8:] = right
    return pixels


def project(root: Path, images: dict[str, np.ndarray | bytes], on_error: str = "fail"
            ) -> Registry:
    """Class folders a/ and b/, each image saved as a TIFF by Pillow (an array) or given
    as bytes, two of each class so the split has both classes on both sides."""
    for name, image in images.items():
        path = root / "imgs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(image, bytes):
            path.write_bytes(image)
        else:
            Image.fromarray(image).save(path)
    write_manifest(root, MANIFEST.replace("ON_ERROR", on_error))
    reg = Registry.open(str(root))
    reg.set_source("imgs", str(root / "imgs"))
    return reg


def test_16_bit_tiffs_are_read_and_downscaled_by_their_high_byte(tmp_path):
    little, big = halves(np.uint16, 257 * 200, 257 * 50), halves(">u2", 257 * 30, 257 * 220)
    images = {"a/1.tif": little, "a/2.tif": little, "b/1.tif": big, "b/2.tif": big}
    for name, mode in (("a/1.tif", "I;16"), ("b/1.tif", "I;16B")):
        project(tmp_path, {name: images[name]})  # the modes Pillow reads them back in
        assert Image.open(tmp_path / "imgs" / name).mode == mode
    reg = project(tmp_path, images)
    split = reg.resolve("split", jobs=1)
    assert split.marker.files == 4 + 1 and split.marker.skipped == 0  # + classes.txt
    ds = reg.resolve("small", jobs=1)
    for part in ("train", "val"):
        pixels = np.load(Path(ds.path) / part / "images.npy")
        labels = np.load(Path(ds.path) / part / "labels.npy")
        expected = {0: (200, 50), 1: (30, 220)}  # the high byte of each half, box-filtered
        for row, label in zip(pixels, labels, strict=True):
            left, right = expected[int(label)]
            assert row.shape == (3, 4, 1)
            assert (row[:, :2] == left).all() and (row[:, 2:] == right).all()


def test_a_float_tiff_validates_but_downscale_refuses_it_naming_it(tmp_path):
    float32 = halves(np.float32, 0.25, 0.75)
    gray = halves(np.uint8, 10, 20)
    reg = project(tmp_path, {"a/f.tif": float32, "a/g.tif": gray, "b/f.tif": float32,
                             "b/g.tif": gray})
    assert Image.open(tmp_path / "imgs" / "a" / "f.tif").mode == "F"
    split = reg.resolve("split", jobs=1)  # decoded, so valid: copied byte for byte
    copied = sorted(Path(split.path).rglob("f.tif"))
    assert [p.read_bytes() for p in copied] == [(tmp_path / "imgs" / "a" / "f.tif").read_bytes()
                                               ] * 2
    out = run_cli("resolve", "small", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert re.fullmatch(r"registry: error: [ab]/f\.tif \(source [0-9a-f]{12}\): unsupported "
                        r"image: a floating-point TIFF \(mode F\) has no standard 8-bit "
                        r"rendering; convert it to 8- or 16-bit integers\n", out.stderr)
    assert [reg.store.marker(k).name for k in reg.store.committed()] == ["split"]
    skipping = project(tmp_path / "skip", {"a/f.tif": float32, "a/g.tif": gray,
                                           "b/f.tif": float32, "b/g.tif": gray}, "skip")
    ds = skipping.resolve("small", jobs=1)
    reasons = skipping.sql("SELECT reason FROM skipped WHERE key = ?", [ds.key]).rows
    assert ds.marker.skipped == 2 and all("(mode F) has no standard 8-bit rendering" in r
                                          for (r,) in reasons)


def tiff(pixels: np.ndarray, sample_format: int) -> bytes:
    """A baseline little-endian TIFF of gray `pixels` in one strip, written by hand: Pillow
    writes no float16 or float64 TIFF (it reads neither)."""
    data = pixels.astype(pixels.dtype.newbyteorder("<")).tobytes()
    height, width = pixels.shape
    tags = [(256, 4, width), (257, 4, height), (258, 3, pixels.dtype.itemsize * 8),
            (259, 3, 1), (262, 3, 1), (273, 4, 0), (277, 3, 1), (278, 4, height),
            (279, 4, len(data)), (339, 3, sample_format)]
    start = 8 + 2 + 12 * len(tags) + 4  # the pixels follow the one directory
    entries = b"".join(struct.pack("<HHII", tag, kind, 1, start if tag == 273 else value)
                       if kind == 4 else struct.pack("<HHIHH", tag, kind, 1, value, 0)
                       for tag, kind, value in tags)
    return b"II*\0" + struct.pack("<IH", 8, len(tags)) + entries + b"\0" * 4 + data


def test_the_hand_written_tiff_is_one_pillow_reads_when_it_can():
    """The writer above is right: its float32 TIFF is Pillow's mode F, every value equal."""
    import io

    pixels = halves(np.float32, 0.25, 0.75)
    with Image.open(io.BytesIO(tiff(pixels, 3))) as im:
        assert im.mode == "F" and (np.asarray(im) == pixels).all()


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")  # Pillow on the truncated one
@pytest.mark.parametrize("dtype, bits", [(np.float16, 16), (np.float64, 64)])
def test_a_tiff_pillow_cannot_decode_is_refused_for_what_it_is(tmp_path, dtype, bits):
    gray = halves(np.uint8, 10, 20)
    odd = tiff(halves(dtype, 0.25, 0.75), 3)
    reg = project(tmp_path, {"a/odd.tif": odd, "a/g.tif": gray, "b/odd.tif": odd,
                             "b/g.tif": gray})
    with pytest.raises(BadImageError, match=rf"odd.tif \(source [0-9a-f]{{12}}\): unsupported "
                                            rf"image: a TIFF of {bits}-bit floating-point "
                                            r"samples, 1 per pixel, which Pillow cannot "
                                            r"decode; convert it to 8- or 16-bit integer "
                                            r"samples$"):
        reg.resolve("split", jobs=1)
    assert list(reg.store.committed()) == []
    truncated = tiff(halves(np.uint8, 10, 20), 1)[:30]  # a damaged 8-bit one: corrupt
    reg = project(tmp_path / "damaged", {"a/t.tif": truncated, "a/g.tif": gray,
                                         "b/t.tif": truncated, "b/g.tif": gray})
    with pytest.raises(BadImageError, match=r"t.tif \(source .*\): corrupt or truncated"):
        reg.resolve("split", jobs=1)
