"""Preloaded into each `dask worker` that tests/executors/test_dask_cluster.py starts
(`--preload FILE`): logs every file-system call the worker process makes on a path
under the folders it must never touch (the coordinator's), one line each, to a file.

An audit hook (sys.addaudithook) sees every `open` and `os.*`/`shutil.*` call with
its path, whatever library makes it, so a task that reads a coordinator's state,
cache or staging folder through a path that happens to exist on this machine is
caught, not excused. Standalone on purpose: a worker cannot import the tests package.
REGISTRY_GUARD_FORBIDDEN: the folders (os.pathsep-separated); REGISTRY_GUARD_LOG: the
log file (appended to, so a worker the nanny restarts logs into the same file).
"""

from __future__ import annotations

import os
import sys

FORBIDDEN = tuple(os.path.realpath(p)
                  for p in os.environ["REGISTRY_GUARD_FORBIDDEN"].split(os.pathsep) if p)
_LOG = os.open(os.environ["REGISTRY_GUARD_LOG"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)


def _forbidden(path: str) -> bool:
    full = os.path.realpath(path)
    return any(full == root or full.startswith(root + os.sep) for root in FORBIDDEN)


def _audit(event: str, args: tuple) -> None:
    if event != "open" and not event.startswith(("os.", "shutil.")):
        return
    for arg in args:
        if isinstance(arg, str | bytes | os.PathLike) and _forbidden(os.fsdecode(arg)):
            # os.write raises no audit event of its own: no recursion
            os.write(_LOG, f"{event} {os.fsdecode(arg)}\n".encode())


sys.addaudithook(_audit)
