"""Stat signatures: a cheap identity of a file's or folder's current state (no content read).

A signature holds each file's size, mtime, ctime and inode, as git's index does (and,
as git by default, not its device number, which a remounted volume changes): a
file rewritten in place with its old size and mtime put back (`cp -p`, `rsync -t`, a
restore from backup) still gets a new ctime, and one renamed over it a new inode, so
such an edit re-indexes the source. (A read also checks every member's bytes against
its indexed xxh3: `members.checked`.)

Folders are walked as torchvision's ImageFolder walks them, following symbolic links
(a linked class folder or image is part of the dataset, its target's content and stat
in the fingerprint); a link that loops back into its own ancestors, a dangling link
and a special file (fifo, socket, device) are refused, naming them: never skipped.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator

from ..errors import SourceError
from .keys import hash_bytes


def stat_signature(location: str, empty: list[str] | None = None) -> str:
    """Sizes, mtimes, ctimes and inodes: equal signatures mean the location's files are
    unchanged. A folder's empty folders go into `empty` (`walk_stat`): they change no
    file, so not the signature either (their coming or going re-reads nothing)."""
    try:
        st = os.stat(location)
    except OSError as exc:
        raise SourceError(f"{location}: {exc.strerror}") from None
    if not os.path.isdir(location):
        return f"file:{_row(st)}"
    rows = [f"{rel}\t{_row(st)}" for rel, st in walk_stat(location, empty)]
    return "dir2:" + hash_bytes("\n".join(rows).encode())


def _row(st: os.stat_result) -> str:
    # (not st_dev: a volume remounted, or seen from another node, keeps its files)
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"


def walk_stat(root: str, empty: list[str] | None = None
              ) -> Iterator[tuple[str, os.stat_result]]:
    """(relative path, stat of the file it names) of every file under `root`, sorted by
    path within each folder, hidden entries skipped, symbolic links followed. `empty` gets
    the relative path of each folder below `root` holding neither a file nor a folder
    (hidden ones aside), as the walk meets it: a class folder with no image in it."""
    try:
        top = os.stat(root)
    except OSError as exc:
        raise SourceError(f"{root}: {exc.strerror}") from None
    # each folder still to read, with the (device, inode) of itself and its ancestors
    stack: list[tuple[str, frozenset[tuple[int, int]]]] = [
        ("", frozenset({(top.st_dev, top.st_ino)}))]
    while stack:
        rel, ancestors = stack.pop()
        with os.scandir(os.path.join(root, rel)) as it:
            entries = sorted(it, key=lambda e: e.name)
        folders, files = [], 0
        for entry in entries:
            if entry.name.startswith("."):
                continue
            sub = f"{rel}/{entry.name}" if rel else entry.name
            try:
                st = entry.stat()  # follows a link
            except OSError as exc:
                if not entry.is_symlink():
                    raise SourceError(f"{os.path.join(root, sub)}: cannot be read "
                                      f"({exc.strerror})") from None
                why = {errno.ELOOP: "links that lead back to each other (a loop)",
                       errno.ENOENT: "which does not exist"}.get(
                           exc.errno, f"which cannot be read ({exc.strerror})")
                raise SourceError(f"{os.path.join(root, sub)}: a symbolic link to "
                                  f"{os.readlink(entry.path)!r}, {why}; fix or remove "
                                  "it") from None
            if stat.S_ISDIR(st.st_mode):
                if (st.st_dev, st.st_ino) in ancestors:
                    what = f"a symbolic link to {os.readlink(entry.path)!r}, a folder that " \
                        "holds it" if entry.is_symlink() else "a folder mounted inside itself"
                    raise SourceError(f"{os.path.join(root, sub)}: {what} (a loop); remove it")
                folders.append((sub, ancestors | {(st.st_dev, st.st_ino)}))
            elif stat.S_ISREG(st.st_mode):
                files += 1
                yield sub, st
            else:
                raise SourceError(f"{os.path.join(root, sub)}: a fifo, socket or device, not "
                                  "a file; remove it from the source folder")
        if empty is not None and rel and not files and not folders:
            empty.append(rel)
        stack.extend(reversed(folders))  # depth first, in name order
