"""Atomic file writes: a reader sees the old file or the new one, never half of one.

The new content goes into a temporary file in the target's own folder (a rename is atomic
only within one filesystem), which is renamed over the target once complete; on any
failure, an interrupt included, the temporary file is removed and the target is left as it
was. A process killed mid-write leaves a hidden `.<name>.<random>.tmp` beside the target.

The temporary file gets the mode a plain `open(path, "w")` would give (0666 less the
umask), not mkstemp's 0600: the state and cache folders may be shared by a team. Nothing is
fsynced unless asked: only the artifact marker needs it (a committed artifact must survive
a crash); the caches and records are rebuilt or rewritten if lost.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

_NAME_KEPT = 100  # of the target's name, in the temporary one's: stays under NAME_MAX


@contextlib.contextmanager
def atomic_path(path: str, *, fsync: bool = False) -> Iterator[str]:
    """A new, empty temporary file beside `path` for the caller to write (np.savez, a tar
    writer), renamed over `path` when the block ends without an exception; removed, and
    `path` untouched, when it raises. `fsync` flushes the file to disk before the rename.
    The folder of `path` must exist."""
    folder, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(folder, f".{name[:_NAME_KEPT]}.{os.urandom(6).hex()}.tmp")
    # O_EXCL: the name is ours alone; 0o666 lets the umask decide the mode, as open() does
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp
        if fsync:
            fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_atomic(path: str, data: bytes | str, *, fsync: bool = False) -> None:
    """Replace `path` with `data` (text as UTF-8, newlines as given) atomically; see
    `atomic_path`."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        if fsync:  # through the writing descriptor, before it closes
            f.flush()
            os.fsync(f.fileno())


def fsync_path(path: str) -> None:
    """Flush a file, or a folder's entries (a rename into it), to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
