"""Empty folders of a source: named, never dropped silently.

A class folder with no image in it makes no class: a source of `cat/`, `bird/` and an
empty `dog/` has two classes, and saying "2 classes" does not say which folder was
left out. A folder source's walk finds its empty folders (`statsig.walk_stat`); an
archive's readers find the folder entries (`tar cf`'s and `zip -r`'s `dog/`) that no
other entry lies below, and give each as a member of its own: its path ends with "/"
and its xxh3 is `EMPTY_FOLDER` (no file member's path ends so). Whoever hands an
archive's members to a layout takes those out first (`is_empty_folder`), so no layout
ever sees one, and `source set` names them apart from the files a layout left out.
Hidden entries are aside in both, as a folder's walk skips them: a folder holding only
`.gitkeep` is empty, and `.ipynb_checkpoints/` is never named.

An archive indexed before empty folders were named says none until it is read again
(`registry source check NAME --force`); a folder's are found by every check's walk.
"""

from __future__ import annotations

from collections.abc import Iterable

EMPTY_FOLDER = "-" * 32
"""The xxh3 column of a member standing for an empty folder (as wide as a digest)."""


def is_empty_folder(path: str) -> bool:
    return path.endswith("/")


def hidden(path: str) -> bool:
    """Whether a part of `path` is hidden (starts with "."), as a folder's walk skips it."""
    return path.startswith(".") or "/." in path


def empty_folders(explicit: list[str], parents: Iterable[str]) -> list[str]:
    """The folder entries `explicit` (paths without the "/") below which no entry lies,
    each with its "/", in their order; `parents`: the folder each entry that is not itself
    hidden lies in, each at least once (the folders above those are found here). Hidden
    ones aside, as a folder source's walk sees them: a hidden folder is never named, and
    what lies in one makes no folder above it hold something."""
    if not explicit:
        return []
    above: set[str] = set()
    for folder in parents:
        if hidden(folder):
            continue
        while folder and folder not in above:
            above.add(folder)
            folder = folder[:max(folder.rfind("/"), 0)]
    return [f"{name}/" for name in explicit if name not in above and not hidden(name)]


def split_left_out(paths: list[str]) -> tuple[list[str], list[str]]:
    """The paths a reading left out, as (files, empty folders without their "/")."""
    if not any(map(is_empty_folder, paths)):
        return paths, []
    return ([p for p in paths if not is_empty_folder(p)],
            [p[:-1] for p in paths if is_empty_folder(p)])
