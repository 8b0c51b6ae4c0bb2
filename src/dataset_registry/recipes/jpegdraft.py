"""A plain JPEG decoded at reduced DCT scale by Pillow's own libjpeg decoder, called
directly: the same pixels as `Image.open` + `draft` + `load`, without their Python.

Pillow reads a JPEG's markers in Python (`JpegImageFile._open`: every segment, its
tables copied into lists), then `load` hands the whole file, from its first byte, to
libjpeg, which reads the markers again itself. At 1/8 scale a 500x375 photo decodes in
~450 us, and Pillow's Python around it (open, parse, draft, the load loop) is ~45 us more:
a tenth of a check or a downscale. `decode` makes the decoder call `load` would make
(mode, raw mode, scale, extents: `JpegImageFile.draft`'s) on the whole file at once.

Only for a file Pillow's parser would read without raising, reinterpreting or handing to
another plugin: every segment before the first scan whole and of a kind it reads plainly
(APPn but a Photoshop block, an MPO index, or an EXIF it would parse for a DPI; DQT
tables whole; DHT, DRI, COM; one 8-bit SOF0/1/2 of 1 or 3 components, its length what
libjpeg accepts), the image under the pixel limit; and only a decode that ends cleanly.
Anything else is None, and the caller takes Pillow's own path, which decides, and words
any refusal, as it always did (tests/recipes/test_jpegdraft.py compares the two).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, NamedTuple

_FRAMES = frozenset({0xC0, 0xC1, 0xC2})  # baseline, extended sequential, progressive
_SKIPPED = frozenset({0xC4, 0xDD, 0xFE})  # DHT, DRI, COM: read past (or kept) whole
_SOS, _DQT = 0xDA, 0xDB


class Drafted(NamedTuple):
    image: Any  # a PIL.Image.Image of ceil(width / scale) x ceil(height / scale)
    width: int  # the file's own size
    height: int
    scale: int  # 1, 2, 4 or 8


def decode(data: bytes, wanted: Callable[[int, int], tuple[int, int]]) -> Drafted | None:
    """`data` decoded at the smallest DCT scale that still covers `wanted(width, height)`
    (as `draft` picks it), or None where Pillow's own path must decide."""
    header = plain_header(data)
    if header is None:
        return None
    width, height, mode = header
    want_w, want_h = wanted(width, height)
    ratio = min(width // want_w, height // want_h)
    scale = next(s for s in (8, 4, 2, 1) if ratio >= s or s == 1)
    size = ((width + scale - 1) // scale, (height + scale - 1) // scale)
    try:
        from PIL import Image

        core = Image.core.new(mode, size)
        decoder = Image.core.jpeg_decoder(mode, mode, "", scale, 0)
        try:
            decoder.setimage(core, (0, 0, *size))
            consumed, status = decoder.decode(data)
        finally:
            decoder.cleanup()
    except Exception:  # another Pillow, another build of it: its own path decides
        return None
    if consumed >= 0 or status < 0:  # wants more bytes (truncated), or failed: Pillow words it
        return None
    return Drafted(Image.Image()._new(core), width, height, scale)


def plain_header(data: bytes) -> tuple[int, int, str] | None:
    """(width, height, mode) of a JPEG whose segments before the first scan are all ones
    Pillow reads plainly (the module's list), under the pixel limit; None otherwise."""
    n = len(data)
    if n < 4 or data[0] != 0xFF or data[1] != 0xD8:
        return None
    pos, frame, exif, dpi = 2, None, False, False
    unpack = struct.unpack_from
    while pos + 4 <= n:
        if data[pos] != 0xFF:  # junk or fill bytes between segments: Pillow skips them
            return None
        marker = data[pos + 1]
        (length,) = unpack(">H", data, pos + 2)
        end = pos + 2 + length
        if length < 2 or end > n:
            return None
        if marker == _SOS:  # (an EXIF is parsed for a DPI only where a JFIF gives none)
            plain = frame is not None and _under_limit(frame) and (dpi or not exif)
            return frame if plain else None
        if marker in _FRAMES:
            if frame is not None or length < 8:
                return None
            bits, height, width, layers = unpack(">BHHB", data, pos + 4)
            if bits != 8 or layers not in (1, 3) or length != 8 + 3 * layers or \
                    not width or not height:
                return None
            frame = (width, height, "L" if layers == 1 else "RGB")
        elif marker == _DQT:
            if not _tables_whole(data, pos + 4, end):
                return None
        elif 0xE0 <= marker <= 0xEF:
            body = data[pos + 4:end]
            if marker == 0xE1 and body.startswith(b"Exif\0\0"):
                exif = True
            elif not _plain_app(marker, body):
                return None
            dpi = dpi or (marker == 0xE0 and body.startswith(b"JFIF") and len(body) >= 12
                          and body[7] in (1, 2))
        elif marker not in _SKIPPED:
            return None
        pos = end
    return None


def _tables_whole(data: bytes, pos: int, end: int) -> bool:
    """Each quantization table in the segment is whole (else Pillow raises)."""
    while pos < end:
        pos += 1 + (64 if data[pos] < 16 else 128)
    return pos == end


def _plain_app(marker: int, body: bytes) -> bool:
    """An APPn segment Pillow stores without raising, and that changes nothing it decodes."""
    if marker == 0xE0 and body.startswith(b"JFIF"):
        return len(body) >= 7  # its version is read unguarded
    if marker == 0xE2 and body.startswith(b"ICC_PROFILE\0"):
        return len(body) >= 14  # its sequence fields are read unguarded at the SOF
    if marker == 0xE2 and body.startswith(b"MPF\0"):
        return False  # an MPO index: Pillow may open another plugin's image
    if marker == 0xED and body.startswith(b"Photoshop 3.0\0"):
        return False  # its resource walk can raise
    if marker == 0xEE and body.startswith(b"Adobe"):
        return len(body) >= 7  # its version is read unguarded
    return True


def _under_limit(frame: tuple[int, int, str]) -> bool:
    from PIL import Image

    limit = Image.MAX_IMAGE_PIXELS  # None is no limit; 0 is not (Pillow refuses every image)
    return limit is None or frame[0] * frame[1] <= limit
