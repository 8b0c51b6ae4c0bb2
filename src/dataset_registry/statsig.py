"""Stat signatures: a cheap identity of a file's or folder's current state (no content read)."""

from __future__ import annotations

import os
from collections.abc import Iterator

from .errors import SourceError
from .keys import hash_bytes


def stat_signature(location: str) -> str:
    """Sizes and mtimes: equal signatures mean the location is unchanged."""
    try:
        st = os.stat(location)
    except OSError as exc:
        raise SourceError(f"{location}: {exc.strerror}") from None
    if not os.path.isdir(location):
        return f"file:{st.st_size}:{st.st_mtime_ns}"
    rows = [f"{rel}\t{size}\t{mtime}" for rel, size, mtime in walk_stat(location)]
    return "dir:" + hash_bytes("\n".join(rows).encode())


def walk_stat(root: str) -> Iterator[tuple[str, int, int]]:
    """(relative path, size, mtime_ns) of every regular file, hidden entries skipped."""
    stack = [""]
    while stack:
        rel = stack.pop()
        with os.scandir(os.path.join(root, rel)) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            if entry.name.startswith("."):
                continue
            sub = f"{rel}/{entry.name}" if rel else entry.name
            if entry.is_dir(follow_symlinks=False):
                stack.append(sub)
            elif entry.is_file(follow_symlinks=False):
                st = entry.stat(follow_symlinks=False)
                yield sub, st.st_size, st.st_mtime_ns
