"""What a recipe names each record (a file, a WebDataset sample key, a `.lst` path):
short when it can be, whole when it must.

Recipes name a record after its image's file name (`0001.jpg`, `<class>/0001.jpg`,
sample key `0001`), as ImageNet's tools do, whose file names are unique. Most other
datasets number their files per class (`cat/0001.jpg`, `dog/0001.png`): there, short
names would clash, so every record of the artifact is named after the image's whole
logical name in its split instead (`cat/0001`, as `webdataset`'s reader groups
`cat/0001.jpg` with `cat/0001.cls`). One rule for a whole artifact, decided from its
names alone, and only where a clash was refused before (webdataset keys, `byclass`,
`sample` and `downscale` folders, `select`'s flat folder): an artifact whose short
names were all distinct keeps its bytes, and one that could not be built before is
built now, so no key names two contents. Where a repeated short name was written as
is (a tfrecord's `image/filename`, an im2rec `.lst` path, downscale's `val/files.txt`),
it still is: those names describe records, never tell them apart.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence

from ..errors import BadInputError


def record_names(names: Sequence[str], short: Sequence[str], whole: Sequence[str], what: str,
                 where: str) -> tuple[list[str], bool]:
    """The records' names (`short` unless two clash, then `whole`) and whether they are
    the whole ones; `names` are the images' logical names, for the refusal."""
    if len(set(short)) == len(short):
        return list(short), False
    refuse_clashes(names, whole, what, where)
    return list(whole), True


def refuse_clashes(names: Sequence[str], keys: Sequence[str], what: str, where: str) -> None:
    """Two images named alike even by whole names (`a.jpg` and `a.png`: one sample key
    `a`) are refused, naming both."""
    seen: dict[str, str] = {}
    for name, key in zip(names, keys, strict=True):
        first = seen.setdefault(key, name)
        if first != name:
            raise BadInputError(f"{where}: {first!r} and {name!r} would both be {what} "
                                f"{key!r}; rename one of them")


def stem(name: str) -> str:
    """A file name without its extension: `cat/0001.jpg` -> `0001`."""
    return posixpath.splitext(posixpath.basename(name))[0]


def whole_stem(name: str) -> str:
    """A logical name without its extension: `cat/0001.jpg` -> `cat/0001`."""
    return posixpath.splitext(name)[0]
