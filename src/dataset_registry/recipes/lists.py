"""Name lists: one file name a line, with an optional integer label (`name [label]`),
as MLPerf's calibration lists and caffe's val.txt are written; `select`'s `list` input."""

from __future__ import annotations

from ..errors import BadInputError


def read_list(path: str) -> list[tuple[str, int | None, int]]:
    """Lines of `name [label]` as (name, label or None, line number)."""
    entries = []
    try:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                fields = line.split()
                if not fields:
                    continue
                if len(fields) > 2 or (len(fields) == 2 and not fields[1].isdigit()):
                    raise BadInputError(f"{path}:{number}: expected '<file name> [<label>]', "
                                        f"got {_shown(line.strip())}")
                entries.append((fields[0], int(fields[1]) if len(fields) == 2 else None,
                                number))
    except UnicodeDecodeError:
        raise BadInputError(f"{path}:{_first_bad_line(path)}: not UTF-8 text") from None
    except IsADirectoryError:
        raise BadInputError(f"{path}: is a folder; a list is a file of names") from None
    except OSError as exc:
        raise BadInputError(f"{path}: cannot be read ({exc.strerror})") from None
    if not entries:
        raise BadInputError(f"{path}: the list is empty")
    return entries


def _first_bad_line(path: str) -> int:
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return 0


def _shown(text: str, limit: int = 80) -> str:
    """A line quoted in an error, cut short: a one-line file may be a gigabyte."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text):,} chars)"
