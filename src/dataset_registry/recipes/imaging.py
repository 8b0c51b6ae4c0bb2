"""Image decoding: validation, and draft-scaled decode + fit + filter for tiny variants."""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from . import jpegdraft


def refuse_bomb(im: Any) -> None:
    """The one decompression-bomb policy: refuse past `PIL.Image.MAX_IMAGE_PIXELS`.

    Pillow itself only warns up to twice the limit (and raises past it), so an image
    between the two would decode in one recipe and be refused in another.
    """
    from PIL import Image

    if Image.MAX_IMAGE_PIXELS and im.width * im.height > Image.MAX_IMAGE_PIXELS:
        raise Image.DecompressionBombError(
            f"{im.width}x{im.height} pixels is over the limit of {Image.MAX_IMAGE_PIXELS} "
            "(PIL.Image.MAX_IMAGE_PIXELS), a possible decompression bomb")


@contextmanager
def image_errors(name: str, data: bytes = b"") -> Iterator[None]:
    """Turn whatever Pillow raises on a bad image, inside the block, into BadImageError.
    `data`, the image's bytes, tells an intact image Pillow cannot decode (a TIFF of
    float16 samples) from a corrupt one."""
    try:
        yield
    except Exception as exc:
        bad = bad_image(exc, name, data)
        if bad is None:
            raise
        raise bad from None


def bad_image(exc: Exception, name: str, data: bytes = b"") -> Exception | None:
    """What `image_errors` raises for `exc`, raised by Pillow on the image `name`; None
    for an exception that says nothing about the image (raise it as it is). A function,
    not only the context manager, for `downscale`: a `try` costs its loop nothing until
    an image is bad, a `with` costs it a generator per image."""
    import struct

    from PIL import Image

    from ..errors import BadImageError

    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return BadImageError(f"{name}: refused: {exc}")
    if isinstance(exc, Image.UnidentifiedImageError):  # its message names a BytesIO object
        samples = undecodable_tiff(data)
        if samples:
            return BadImageError(f"{name}: unsupported image: a TIFF of {samples}, which "
                                 "Pillow cannot decode; convert it to 8- or 16-bit integer "
                                 "samples")
        return BadImageError(f"{name}: corrupt or truncated image: cannot identify image "
                             "file (no format Pillow reads)")
    if isinstance(exc, (OSError, SyntaxError, ValueError, EOFError, struct.error)):
        return BadImageError(f"{name}: corrupt or truncated image: {exc}")
    return None


@contextmanager
def open_image(data: bytes, name: str) -> Iterator[Any]:
    """`data` opened (header only) under the bomb policy; errors in the block, decoding
    included, raise BadImageError naming `name`."""
    from PIL import Image

    from ..errors import BadImageError

    if not data:
        raise BadImageError(f"{name}: corrupt or truncated image: an empty file (0 bytes)")
    with image_errors(name, data), warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused below
        with Image.open(io.BytesIO(data)) as im:  # raises past twice the limit
            refuse_bomb(im)
            yield im


class ImageHeader(NamedTuple):
    """What opening an image tells (before any decode): its format, width and height."""

    format: str | None
    width: int
    height: int


def check_image(data: bytes, name: str) -> ImageHeader:
    """Decode `data` (at reduced DCT scale where the format allows) or raise BadImageError;
    the header it opened, so that a caller needs no second open for it.

    A truncated or corrupt JPEG fails in the entropy decoder, which runs in full
    even at 1/8 scale, so the cheap decode still catches it.
    """
    drafted = jpegdraft.decode(data, _eighth)  # a plain JPEG: libjpeg straight away
    if drafted is not None:
        return ImageHeader("JPEG", drafted.width, drafted.height)
    with open_image(data, name) as im:
        header = ImageHeader(im.format, im.width, im.height)  # draft shrinks im.size
        if im.format == "JPEG":
            im.draft(im.mode, _eighth(*im.size))
        im.load()
    return header


def _eighth(width: int, height: int) -> tuple[int, int]:
    return max(1, width // 8), max(1, height // 8)


def eight_bit(im: Any, name: str) -> Any:
    """16- and 32-bit integer images (16-bit PNGs and TIFFs) as 8-bit gray, by their high
    byte (libpng's `png_set_strip_16`, what TensorFlow's decode_png does); other images
    unchanged. Pillow's own convert clips such values at 255 instead, or fails
    (`Image.eval`). A floating-point image (mode F: a float32 TIFF) is a BadImageError
    naming `name`: its values have no agreed range (0..1? 0..255? HDR radiance?), so
    any 8-bit rendering would be a guess (Pillow's convert clips at 0 and 255)."""
    if im.mode == "F":
        from ..errors import BadImageError

        raise BadImageError(f"{name}: unsupported image: a floating-point "
                            f"{im.format or 'image'} (mode F) has no standard 8-bit rendering; "
                            "convert it to 8- or 16-bit integers")
    if im.mode not in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        return im
    import numpy as np
    from PIL import Image

    wide = np.asarray(im.convert("I") if im.mode != "I" else im, dtype=np.int64)
    return Image.fromarray((np.clip(wide, 0, 65535) >> 8).astype(np.uint8), "L")


def to_rgb(im: Any, name: str) -> Any:
    """An RGB image, as a recipe that re-encodes needs: alpha dropped (as decode_png with
    channels=3 does), 16-bit scaled to 8, palette/CMYK/gray converted; floating-point
    refused (`eight_bit`)."""
    im = eight_bit(im, name)
    return im if im.mode == "RGB" else im.convert("RGB")


def rgb_jpeg(data: bytes, name: str, quality: int,
             resize: Callable[[Any], Any] | None = None) -> tuple[bytes, int, int]:
    """`data` decoded under the bomb policy, made RGB (`to_rgb`), optionally resized,
    and encoded as JPEG at `quality`: (bytes, width, height)."""
    with open_image(data, name) as im:
        rgb = to_rgb(im, name)
        if resize is not None:
            rgb = resize(rgb)
        buf = io.BytesIO()
        rgb.save(buf, "JPEG", quality=quality)
        return buf.getvalue(), rgb.width, rgb.height


@contextmanager
def quiet_bomb_warnings() -> Iterator[None]:
    """Silence Pillow's bomb *warnings* for a batch: `downscale` refuses such images itself."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        yield


Fit = Literal["squash", "crop", "pad"]
Color = Literal["srgb", "gray"]
Luma = Literal["rec709", "rec601"]
Filter = Literal["box", "lanczos"]

# Gray from gamma-encoded sRGB: ImageMagick's `-colorspace Gray` uses Rec.709 luma
# (what the original ImageNet-tiny used); Pillow's convert("L") and JPEG's Y use Rec.601.
LUMA_MATRIX = {"rec709": (0.2126, 0.7152, 0.0722, 0.0), "rec601": (0.299, 0.587, 0.114, 0.0)}


@dataclass(frozen=True)
class Downscale:
    width: int
    height: int
    fit: Fit = "squash"
    color: Color = "srgb"
    luma: Luma = "rec709"
    filter: Filter = "box"

    @property
    def channels(self) -> int:
        return 3 if self.color == "srgb" else 1

    @property
    def row_bytes(self) -> int:
        return self.width * self.height * self.channels


def downscale(data: bytes, spec: Downscale, name: str, *, draft: bool = True) -> bytes:
    """Decode `data` and return `spec.height x spec.width x channels` uint8 pixels.

    Callers silence Pillow's DecompressionBombWarning once per batch (see
    `quiet_bomb_warnings`): images past the limit are refused here instead.

    With `draft`, libjpeg decodes at the smallest DCT scale (1/2, 1/4, 1/8) that
    still covers the output, then the named filter does the rest; `draft=False`
    is the full-decode reference the tolerance is measured against.
    """
    from PIL import Image

    try:
        drafted = jpegdraft.decode(data, lambda w, h: _needed(w, h, spec)) if draft else None
        if drafted is not None:  # a plain JPEG, decoded as draft + load below would
            im, scale = drafted.image, drafted.scale
            bounds: tuple[float, float] = (drafted.width / scale, drafted.height / scale)
        else:
            im = Image.open(io.BytesIO(data))  # raises past twice the pixel limit
            refuse_bomb(im)
            bounds = im.size
            if draft and im.format == "JPEG":
                # libjpeg rounds the scaled size up: 500 px at 1/8 decodes to 63 columns,
                # the last one only half real. Filter over the true extent, not the pixels.
                drafted_to = im.draft(im.mode, _needed(*im.size, spec))
                if drafted_to is not None:  # None: no scan to draft (load refuses it)
                    _, box = drafted_to
                    bounds = (box[2], box[3])
            im.load()
        out = _fit(im if im.mode == "RGB" else _to_mode(im, spec, name), spec, bounds)
        if spec.color == "gray" and out.mode != "L":
            out = out.convert("L", LUMA_MATRIX[spec.luma])
        return out.tobytes()
    except Exception as exc:  # as `image_errors` would, without a generator per image
        bad = bad_image(exc, name, data)
        if bad is None:
            raise
        raise bad from None


# TIFF SampleFormat values (TIFF 6.0 / Adobe's TIFF technical note 3)
_SAMPLE_FORMATS = {1: "unsigned integer", 2: "signed integer", 3: "floating-point",
                   4: "untyped", 5: "complex integer", 6: "complex floating-point"}


def undecodable_tiff(data: bytes) -> str | None:
    """What a TIFF's samples are ("16-bit floating-point samples, 1 per pixel"), when
    its first directory parses and says they are of a kind Pillow does not decode
    (floating-point other than 32-bit gray, complex, untyped, odd widths); None for
    anything else (not a TIFF, a damaged one, one Pillow should read: then it is corrupt)."""
    import struct

    if data[:4] not in (b"II*\0", b"MM\0*"):
        return None
    order = "<" if data[:2] == b"II" else ">"
    found: dict[int, int] = {}
    try:
        (directory,) = struct.unpack_from(order + "I", data, 4)
        (entries,) = struct.unpack_from(order + "H", data, directory)
        for i in range(entries):
            tag, kind, count, value = struct.unpack_from(order + "HHI4s", data,
                                                         directory + 2 + 12 * i)
            if tag in (258, 277, 339) and kind == 3:  # BitsPerSample, SamplesPerPixel,
                if count > 2:  # SampleFormat: SHORTs; more than two are stored elsewhere
                    value = data[struct.unpack(order + "I", value)[0]:][:2]
                (found[tag],) = struct.unpack_from(order + "H", value)
    except struct.error:
        return None
    bits, per_pixel, kind = found.get(258, 1), found.get(277, 1), found.get(339, 1)
    if kind in (1, 2) and bits in (1, 2, 4, 8, 16, 32):
        return None
    return (f"{bits}-bit {_SAMPLE_FORMATS.get(kind, f'SampleFormat {kind}')} samples, "
            f"{per_pixel} per pixel")


def _needed(width: int, height: int, spec: Downscale) -> tuple[int, int]:
    """The smallest decoded size from which `spec`'s fit can be cut without upsampling."""
    if spec.fit == "squash":
        return spec.width, spec.height
    scale = (max if spec.fit == "crop" else min)(spec.width / width, spec.height / height)
    return max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale))


def _to_mode(im: Any, spec: Downscale, name: str) -> Any:
    """RGB (or L when the output is gray and the image already is) before filtering.

    Palette, CMYK, alpha and 16-bit images are converted first: Pillow resizes
    palette images with nearest-neighbour only, and the filters need real values;
    floating-point ones are refused (`eight_bit`).
    """
    if im.mode == "RGB" or (im.mode == "L" and spec.color == "gray"):
        return im
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        from PIL import Image

        im = im.convert("RGBA")
        background = Image.new("RGB", im.size, (0, 0, 0))
        background.paste(im, mask=im.getchannel("A"))
        return background
    im = eight_bit(im, name)
    return im.convert("RGB") if spec.color == "srgb" or im.mode != "L" else im


_BOX, _LANCZOS = 4, 1  # PIL.Image.Resampling.BOX / LANCZOS, without a per-image lookup


def _resize(im: Any, size: tuple[int, int], resample: int,
            box: tuple[float, float, float, float]) -> Any:
    """`im.resize(size, resample, box=box)` for the RGB and L images `_fit` is given: the
    same C resample, without `Image.resize`'s checks and dispatch, which cost a third as
    much as the resample itself on a 1/8-scale decode (~7 of ~20 us). Anything else (a
    resize that changes nothing, which Pillow copies instead) goes through Pillow."""
    if im.mode not in ("RGB", "L") or (size == im.size and box == (0, 0, *im.size)):
        return im.resize(size, resample, box=box)
    return im._new(im.im.resize(size, resample, box))


def _fit(im: Any, spec: Downscale, bounds: tuple[float, float]) -> Any:
    from PIL import Image

    resample = _BOX if spec.filter == "box" else _LANCZOS
    width, height = bounds
    size = (spec.width, spec.height)
    if spec.fit == "squash":
        return _resize(im, size, resample, (0, 0, width, height))
    if spec.fit == "crop":
        scale = max(spec.width / width, spec.height / height)
        cw, ch = min(width, spec.width / scale), min(height, spec.height / scale)
        x0, y0 = (width - cw) / 2, (height - ch) / 2
        return _resize(im, size, resample, (x0, y0, x0 + cw, y0 + ch))
    scale = min(spec.width / width, spec.height / height)
    inner = (max(1, min(spec.width, round(width * scale))),
             max(1, min(spec.height, round(height * scale))))
    canvas = Image.new(im.mode, size, 0)
    canvas.paste(_resize(im, inner, resample, (0, 0, width, height)),
                 ((spec.width - inner[0]) // 2, (spec.height - inner[1]) // 2))
    return canvas
