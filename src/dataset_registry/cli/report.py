"""`registry report NAME [-o PATH]`: the dataset card, written whole or not at all."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import Any

from ..errors import BadInputError, StorageError


def report(reg: Any, args: argparse.Namespace) -> int:
    path = args.output or f"{args.name}.card.html"
    if path == "-":
        sys.stdout.write(reg.report(args.name, near=args.near))
        return 0
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise BadInputError(f"report: -o {path}: folder {folder} does not exist")
    if os.path.isdir(path):
        raise BadInputError(f"report: -o {path} is a folder; name the file to write")
    html = reg.report(args.name, near=args.near)
    write_atomically(path, html)
    print(f"wrote {path} ({len(html.encode()):,} bytes): the dataset card of {args.name}")
    return 0


def write_atomically(path: str, text: str) -> None:
    """`text` into `path` through a temporary file beside it, renamed over it once whole:
    a reader sees the old file or the new one, never half of one."""
    import tempfile

    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp",
                                   dir=folder)
    except OSError as exc:
        raise StorageError(f"{path}: cannot write ({exc.strerror or exc})") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644 & ~_umask())  # as a file the user wrote (mkstemp's is 0600)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise StorageError(f"{path}: cannot write ({exc.strerror or exc})") from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
