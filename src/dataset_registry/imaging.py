"""Image decoding: validation now; draft-scaled decode and resizing build on it."""

from __future__ import annotations

import io
import warnings


def check_image(data: bytes, name: str) -> None:
    """Decode `data` (at reduced DCT scale where the format allows) or raise BadImageError.

    A truncated or corrupt JPEG fails in the entropy decoder, which runs in full
    even at 1/8 scale, so the cheap decode still catches it.
    """
    from PIL import Image

    from .errors import BadImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                if im.format == "JPEG":
                    im.draft(im.mode, (max(1, im.width // 8), max(1, im.height // 8)))
                im.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadImageError(f"{name}: refused: {exc}") from None
    except (OSError, SyntaxError, ValueError, Image.UnidentifiedImageError) as exc:
        raise BadImageError(f"{name}: corrupt or truncated image: {exc}") from None
