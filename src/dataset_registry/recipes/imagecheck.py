"""The one `on_error` policy: what every recipe does with an image it cannot use.

A recipe feeds its images through `usable`: each is decoded first (`check_image`,
at 1/8 scale for JPEGs) when `validate`, then passed to the recipe's own
`convert(ref, bytes)`, if any. An image either step refuses (BadImageError) fails the build
with `on_error: fail`, naming the member and its source, or with `skip` is
recorded through `Output.skip` (-> `_skipped.parquet`) and left out; the recipe
numbers what it writes from what `usable` yields, so its records stay consistent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Literal, TypeVar

from ..artifact.output import Output
from ..errors import BadImageError
from ..sources.members import MemberRef
from .imaging import check_image

OnError = Literal["fail", "skip"]
IMAGE_CHECKS = frozenset({"validate_images", "on_error"})  # the params that choose the policy

T = TypeVar("T")


def where(ref: MemberRef) -> str:
    """How an error names an image: its member, and which source it came from."""
    return f"{ref.origin} (source {ref.source[:12]})"


def usable(images: Iterable[tuple[MemberRef, bytes]], out: Output, on_error: OnError, *,
           validate: bool = True, convert: Callable[[MemberRef, bytes], T] | None = None
           ) -> Iterator[tuple[int, MemberRef, T | bytes]]:
    """(position in `images`, ref, the bytes or what `convert` made of them) for every
    image that passes; a refused one raises or is skipped. `convert` names the image
    by `where(ref)` in what it raises."""
    for i, (ref, data) in enumerate(images):
        try:
            if validate:
                check_image(data, where(ref))
            value = convert(ref, data) if convert is not None else data
        except BadImageError as exc:
            if on_error == "fail":
                raise
            out.skip(ref.origin, ref.source, str(exc))
            continue
        yield i, ref, value
