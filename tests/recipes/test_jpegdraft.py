"""A plain JPEG's straight libjpeg decode (jpegdraft) against Pillow's own path, which it
stands in for: the same pixels at every scale, the same check verdict and the same
downscale bytes or refusal, for plain files and damaged ones; and every file Pillow might
read otherwise (EXIF it parses, MPO, CMYK, 12-bit, junk between segments, ...) left to
Pillow."""

from __future__ import annotations

import io
import random
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from dataset_registry.errors import BadImageError
from dataset_registry.recipes import imaging, jpegdraft
from dataset_registry.recipes.imaging import Downscale, check_image, downscale

PHOTOS = Path(__file__).resolve().parents[1] / "fixtures" / "real" / "photos"
SPECS = [Downscale(32, 32), Downscale(20, 10, "crop", "gray", "rec601", "lanczos"),
         Downscale(16, 24, "pad"), Downscale(300, 200)]


def photo(width: int, height: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    """Smooth gradients with noise: a JPEG of it has real AC coefficients."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    planes = [(x * (3 + c) + y * (5 - c)) % 256 for c in range(3)]
    pixels = np.stack(planes, -1) + rng.integers(0, 40, (height, width, 3))
    im = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    return im.convert(mode)


def jpeg(im: Image.Image, **options) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", **options)
    return buf.getvalue()


def exif_with_dpi() -> bytes:
    exif = Image.Exif()
    exif[0x0128], exif[0x011A], exif[0x011B] = 2, 300.0, 300.0  # inches, 300 dpi
    return exif.tobytes()


PLAIN = {
    "baseline 4:2:0": jpeg(photo(500, 375)),
    "4:4:4 q95": jpeg(photo(333, 250, seed=1), quality=95, subsampling=0),
    "4:2:2": jpeg(photo(97, 61, seed=2), subsampling=1),
    "progressive": jpeg(photo(500, 375, seed=3), progressive=True),
    "optimized": jpeg(photo(256, 256, seed=4), optimize=True),
    "restart markers": jpeg(photo(200, 150, seed=5), restart_marker_blocks=4),
    "gray": jpeg(photo(320, 240, "L", seed=6)),
    "1x1": jpeg(photo(1, 1, seed=7)),
    "7x13": jpeg(photo(7, 13, seed=8)),
    "jfif dpi and exif": jpeg(photo(120, 90, seed=9), dpi=(72, 72), exif=exif_with_dpi()),
    "comment": jpeg(photo(64, 48, seed=10), comment=b"a comment"),
    "icc": jpeg(photo(64, 48, seed=11),
                icc_profile=Image.open(PHOTOS / "rocket.jpg").info["icc_profile"]),
    "retina.jpg": (PHOTOS / "retina.jpg").read_bytes(),
    "rocket.jpg": (PHOTOS / "rocket.jpg").read_bytes(),
}


def sixteen_bit_tables() -> bytes:
    """A JPEG whose quantization tables are 16-bit (libjpeg says so on stderr: made in a
    test, where pytest captures it)."""
    return jpeg(photo(64, 48, seed=12), qtables=[[300] * 64, [2] * 64])


def segment(marker: int, body: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(body) + 2) + body


def after_soi(data: bytes, extra: bytes) -> bytes:
    return data[:2] + extra + data[2:]


BASE = PLAIN["baseline 4:2:0"]
SOF = BASE.index(b"\xff\xc0")
SOS = BASE.index(b"\xff\xda")
LEFT_TO_PILLOW = {
    "exif without a jfif dpi": jpeg(photo(64, 48), exif=exif_with_dpi()),
    "cmyk (adobe)": jpeg(photo(64, 48).convert("CMYK")),
    "an mpo index": after_soi(BASE, segment(0xE2, b"MPF\0II*\0" + bytes(8))),
    "a photoshop block": after_soi(BASE, segment(0xED, b"Photoshop 3.0\x008BIM\x04")),
    "a short jfif": after_soi(BASE, segment(0xE0, b"JFIF\0")),
    "a short adobe": after_soi(BASE, segment(0xEE, b"Adobe")),
    "a short icc": after_soi(BASE, segment(0xE2, b"ICC_PROFILE\0\x01")),
    "junk between segments": after_soi(BASE, b"\x00\x00"),
    "fill bytes": after_soi(BASE, b"\xff\xff"),
    "a short quantization table": after_soi(BASE, segment(0xDB, bytes(30))),
    "12-bit samples": BASE[:SOF + 4] + b"\x0c" + BASE[SOF + 5:],
    "two frames": BASE[:SOS] + BASE[SOF:SOF + 2 + struct.unpack(">H", BASE[SOF + 2:SOF + 4])[0]]
                  + BASE[SOS:],
    "a lossless frame": BASE[:SOF + 1] + b"\xc3" + BASE[SOF + 2:],
    "a frame of 2 components": BASE[:SOF + 9] + b"\x02" + BASE[SOF + 10:],
    "no scan": BASE[:SOS],
    "truncated in the header": BASE[:SOF + 5],
    "truncated in the scan": BASE[:len(BASE) * 2 // 3],
    "a png": (PHOTOS / "camera.png").read_bytes(),
    "empty": b"",
}
DAMAGED_SCAN = {  # plain headers, bad entropy-coded data: libjpeg decides, as in Pillow
    "zeroed scan": BASE[:SOS + 40] + bytes(len(BASE) - SOS - 42) + b"\xff\xd9",
    "a marker inside the scan": BASE[:SOS + 200] + b"\xff\xd0" + BASE[SOS + 202:],
    "garbage after the end": BASE + b"garbage",
    "no end marker": BASE[:-2],
}


def pillow_draft(data: bytes, size: tuple[int, int]) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.draft(im.mode, size)
    im.load()
    return im


@pytest.mark.parametrize("name", sorted(PLAIN))
@pytest.mark.parametrize("divisor", [1, 2, 4, 8, 100])
def test_a_plain_jpeg_decodes_to_pillows_pixels(name, divisor):
    data = PLAIN[name]
    width, height = Image.open(io.BytesIO(data)).size
    wanted = (max(1, width // divisor), max(1, height // divisor))
    drafted = jpegdraft.decode(data, lambda w, h: wanted)
    assert drafted is not None, name
    assert (drafted.width, drafted.height) == (width, height)
    im = pillow_draft(data, wanted)
    assert drafted.image.mode == im.mode and drafted.image.size == im.size
    assert drafted.image.tobytes() == im.tobytes()
    assert im.size == ((width + drafted.scale - 1) // drafted.scale,
                       (height + drafted.scale - 1) // drafted.scale)


def test_sixteen_bit_tables_decode_to_pillows_pixels():
    data = sixteen_bit_tables()
    drafted = jpegdraft.decode(data, lambda w, h: (8, 6))
    assert drafted is not None and drafted.image.tobytes() == pillow_draft(data, (8, 6)).tobytes()


@pytest.mark.parametrize("name", sorted(LEFT_TO_PILLOW))
def test_what_pillow_might_read_otherwise_is_left_to_it(name):
    assert jpegdraft.decode(LEFT_TO_PILLOW[name], lambda w, h: (8, 8)) is None


def outcome(fn, *args):
    try:
        return "ok", fn(*args)
    except BadImageError as exc:
        return "refused", str(exc)


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow on the damaged MPO index
@pytest.mark.parametrize("name", sorted({**PLAIN, **LEFT_TO_PILLOW, **DAMAGED_SCAN}))
def test_checks_and_downscales_read_as_on_pillows_path(name, monkeypatch):
    """Each verdict, header, downscaled byte and refusal the same with the straight decode
    and without it (Pillow's path alone)."""
    data = {**PLAIN, **LEFT_TO_PILLOW, **DAMAGED_SCAN}[name]
    calls = [(check_image, data, "m.jpg")] + [(downscale, data, spec, "m.jpg")
                                               for spec in SPECS]
    with imaging.quiet_bomb_warnings():
        fast = [outcome(fn, *args) for fn, *args in calls]
        monkeypatch.setattr(jpegdraft, "decode", lambda data, wanted: None)
        slow = [outcome(fn, *args) for fn, *args in calls]
    assert fast == slow
    if name in PLAIN:
        assert all(verdict == "ok" for verdict, _ in fast)


def test_damaged_scans_are_decoded_straight_and_refused_by_pillows_words():
    """The scans libjpeg refuses are refused in Pillow's words (the straight decode gave
    way); the others decode straight."""
    for name, data in DAMAGED_SCAN.items():
        straight = jpegdraft.decode(data, lambda w, h: (w // 8, h // 8))
        try:
            check_image(data, name)
        except BadImageError as exc:
            assert straight is None and str(exc).startswith(f"{name}: corrupt or truncated")
        else:
            assert straight is not None, name


def test_over_the_pixel_limit_is_left_to_pillow(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500 * 375 - 1)
    assert jpegdraft.decode(BASE, lambda w, h: (8, 8)) is None
    with pytest.raises(BadImageError, match="over the limit"):
        check_image(BASE, "big.jpg")


def test_a_limit_of_zero_is_left_to_pillow_which_refuses_every_image(monkeypatch):
    """`MAX_IMAGE_PIXELS = 0` is not "no limit" to Pillow (None is): it refuses every image
    as a bomb, so the straight decode must give way rather than accept one."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 0)
    assert jpegdraft.decode(BASE, lambda w, h: (8, 8)) is None
    with pytest.raises(BadImageError, match=r"^big.jpg: refused: .*exceeds limit of 0 pixels"):
        check_image(BASE, "big.jpg")
    with pytest.raises(BadImageError, match=r"^big.jpg: refused: .*exceeds limit of 0 pixels"):
        downscale(BASE, SPECS[0], "big.jpg")


FUZZED = [jpeg(photo(24, 17, seed=13)), jpeg(photo(19, 9, "L", seed=14), progressive=True),
          jpeg(photo(40, 24, seed=15), restart_marker_blocks=1, dpi=(72, 72),
               exif=exif_with_dpi())]


def damaged(seed: int = 0):
    """Every cut of each small JPEG, and bytes set at random (headers and scans alike)."""
    rng = random.Random(seed)
    for base in FUZZED:
        yield from (base[:end] for end in range(len(base)))
        for _ in range(250):
            flipped = bytearray(base)
            for _ in range(rng.choice((1, 1, 2, 3))):
                flipped[rng.randrange(len(base))] = rng.choice((rng.randrange(256), 0xFF, 0))
            yield bytes(flipped)


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow on a flip that makes an MPO index
@pytest.mark.parametrize("load_truncated", [False, True])
def test_every_cut_and_random_flips_read_as_on_pillows_path(load_truncated, monkeypatch):
    """Whatever Pillow's `LOAD_TRUNCATED_IMAGES` (a user may set it), each damaged file's
    check verdict and downscale bytes or refusal are the ones Pillow's path gives."""
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", load_truncated)
    straight, refused, decode = 0, 0, jpegdraft.decode
    for data in damaged():
        calls = [(check_image, data, "m.jpg"), (downscale, data, SPECS[1], "m.jpg")]
        fast = [outcome(fn, *args) for fn, *args in calls]
        with monkeypatch.context() as pillow_only:
            pillow_only.setattr(jpegdraft, "decode", lambda data, wanted: None)
            assert fast == [outcome(fn, *args) for fn, *args in calls], data.hex()
        straight += decode(data, lambda w, h: (w, h)) is not None
        refused += fast[0][0] == "refused"
    assert straight > 300 and refused > 1500  # both paths, and both verdicts, well tried
