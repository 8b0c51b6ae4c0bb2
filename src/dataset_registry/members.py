"""Image members as recipes see them: a name, and where its bytes lie.

Sources (tars, folders) and built datasets both present their images as a
`MemberSet` of `MemberRef`s; a worker reads a member with one `pread`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

from .errors import SourceError


@dataclass(frozen=True, slots=True)
class MemberRef:
    name: str  # logical name in its split: "ILSVRC2012_val_00000001.JPEG", "n01440764/x.JPEG"
    path: str  # the local file holding the bytes (a tar, or the image itself)
    offset: int  # where the bytes start in `path`
    size: int
    origin: str  # the member as the raw source names it, for provenance
    source: str  # fingerprint of the raw source it came from


class MemberSet:
    """The images of one split, sorted by logical name."""

    def __init__(self, split: str, refs: list[MemberRef], where: str) -> None:
        self.split = split
        self.where = where  # for messages: "source imagenet2012-val (/data/val.tar)"
        self._refs = sorted(refs, key=lambda r: r.name)
        self._by_name = {r.name: r for r in self._refs}

    def __len__(self) -> int:
        return len(self._refs)

    def __iter__(self) -> Iterator[MemberRef]:
        return iter(self._refs)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def get(self, name: str) -> MemberRef:
        try:
            return self._by_name[name]
        except KeyError:
            raise SourceError(f"{self.where}: has no image {name!r} "
                              f"(it holds {len(self)} images)") from None


_open_files: dict[str, int] = {}


def read_member(ref: MemberRef) -> bytes:
    """The member's bytes; file descriptors are kept open per process for speed."""
    fd = _open_files.get(ref.path)
    if fd is None:
        if len(_open_files) >= 64:
            for old in _open_files.values():
                os.close(old)
            _open_files.clear()
        try:
            fd = os.open(ref.path, os.O_RDONLY)
        except OSError as exc:
            raise SourceError(f"{ref.path}: cannot read {ref.origin}: {exc.strerror}") from None
        _open_files[ref.path] = fd
    data = os.pread(fd, ref.size, ref.offset)
    if len(data) != ref.size:
        raise SourceError(f"{ref.path}: {ref.origin} is truncated "
                          f"({len(data)} of {ref.size} bytes); has the source changed?")
    return data
