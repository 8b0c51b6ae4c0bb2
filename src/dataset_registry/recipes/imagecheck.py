"""The one `on_error` policy: what every recipe does with an image it cannot use.

A recipe feeds its images through `usable`: each is decoded first (`check_image`,
at 1/8 scale for JPEGs) when `validate`, then passed to the recipe's own
`convert(ref, bytes)`, if any. An image either step refuses (BadImageError) fails the build
with `on_error: fail`, naming the member and its source, or with `skip` is
recorded through `Output.skip` (-> `_skipped.parquet`) and left out; the recipe
numbers what it writes from what `usable` yields, so its records stay consistent.

A check's verdict is a function of the image's bytes, so it is paid once per content: a
member whose verdict an earlier build recorded (`MemberRef.checked`, set by the engine
from the state folder's cache, engine/imagechecks.py) is not decoded again, since reading
it verified its bytes against the same xxh3; a refusal reads exactly as when it was
decoded. Every verdict reached here is handed back through `Output.image_checked` (a part
file), for the coordinator to keep after the build: workers never see the state folder.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Literal, TypeVar

from ..errors import BadImageError
from .imaging import ImageHeader, check_image

if TYPE_CHECKING:  # an Output is handed in: writing one is the engine's import
    from ..artifact.output import Output
    from ..sources.members import MemberRef  # (numpy: not for a key)

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
                check(ref, data, out)
            value = convert(ref, data) if convert is not None else data
        except BadImageError as exc:
            if on_error == "fail":
                raise
            out.skip(ref.origin, ref.source, str(exc))
            continue
        yield i, ref, value


def check(ref: MemberRef, data: bytes, out: Output) -> ImageHeader | None:
    """The image check of one member: its known verdict (None), or a decode (whose verdict
    goes to `out` when the member's xxh3 names its content; the header it read)."""
    name = where(ref)
    if ref.checked is not None and ref.xxh3:  # the read checked the bytes are those judged
        if ref.checked:
            raise BadImageError(f"{name}: {ref.checked}")
        return None
    try:
        header = check_image(data, name)
    except BadImageError as exc:
        why = why_refused(str(exc), name)
        if ref.xxh3 and why is not None:
            out.image_checked(ref.xxh3, why)
        raise
    if ref.xxh3:
        out.image_checked(ref.xxh3, "")
    return header


def why_refused(message: str, name: str) -> str | None:
    """A refusal without the member's name (it is kept by content, which another member
    may share); None if the name is not simply its prefix (then it is not kept)."""
    why = message.removeprefix(f"{name}: ")
    if why == message or name in why or not why or "\n" in why:
        return None
    return why


class CheckImages:
    """The image checks alone, as a task of their own (engine/checkfirst.py): a slice of
    members in, each content's verdict out, `(xxh3, why)` ("" usable), as `check` reaches
    and keeps it (the same call). A refusal `check` does not keep (its message is not
    simply the member's name and a reason) is left out, and so is a decode that raised
    what no check expects (a decoder's bug): the task that writes the image decodes it
    again and fails or skips it with its own words. Writes nothing."""

    name = "image check"

    @classmethod
    def run(cls, params: None, members: Iterable[MemberRef], out: Output
            ) -> list[tuple[str, str]]:
        from ..sources.members import read_members

        verdicts = _Verdicts()
        for ref, data in read_members(members):
            try:
                check(ref, data, verdicts)  # type: ignore[arg-type]
            except Exception:  # refused (its verdict kept), or not this task's to report
                continue
        return list(verdicts)


class _Verdicts(list):
    """What `check` hands an Output, kept as (xxh3, why) pairs."""

    def image_checked(self, xxh3: str, why: str) -> None:
        self.append((xxh3, why))
