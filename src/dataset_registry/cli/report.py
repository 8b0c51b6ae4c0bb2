"""`registry report NAME [-o PATH]`: the dataset card, written whole or not at all."""

from __future__ import annotations

import argparse
import os
import stat
import sys
from typing import Any

from ..errors import BadInputError, StorageError


def report(reg: Any, args: argparse.Namespace) -> int:
    path = args.output or f"{args.name}.card.html"
    if path == "-":
        sys.stdout.write(reg.report(args.name, near=args.near))
        return 0
    folder = os.path.dirname(os.path.abspath(path))
    if path.endswith(("/", os.sep)) or os.path.isdir(path):
        raise BadInputError(f"report: -o {path} is a folder; name the file to write")
    if not os.path.isdir(folder):
        what = "is not a folder" if os.path.lexists(folder) else "does not exist"
        raise BadInputError(f"report: -o {path}: folder {folder} {what}")
    if os.path.lexists(path) and not stat.S_ISREG(os.lstat(path).st_mode):
        raise BadInputError(f"report: -o {path} is not a regular file (a link, device or "
                            "pipe): the card is written only to a new or regular file "
                            "(-o - writes it to standard output)")
    html = reg.report(args.name, near=args.near)
    write_atomically(path, html)
    print(f"wrote {path} ({len(html.encode()):,} bytes): the dataset card of {args.name}")
    return 0


def write_atomically(path: str, text: str) -> None:
    """`text` into `path`, whole or not at all (core.atomic); a failure is a StorageError
    naming the path."""
    from ..core.atomic import write_atomic

    try:
        write_atomic(path, text)
    except OSError as exc:
        raise StorageError(f"{path}: cannot write ({exc.strerror or exc})") from None
