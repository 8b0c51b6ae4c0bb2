"""Label tables a layout reads: CSV, JSON Lines or Parquet, each row a dict, with the
line (or row) it came from for messages.

A table is bounded before it is trusted: at most `MAX_TABLE_BYTES`, cells of at most
`MAX_CELL_BYTES`, `MAX_COLUMNS` columns and JSON nested at most `MAX_DEPTH` deep, so a
hostile one is a clear refusal, not minutes of parsing and gigabytes of memory. Values
come back as JSON values (text, whole numbers, finite floats, true/false, null, lists,
objects): Parquet's decimals, dates, times and intervals as their exact text.

`labels` reads a label column as Hugging Face's imagefolder types it: whole numbers
(JSON or Parquet integers; a CSV column whose every value is one, written as a number is)
keep their value as the label, text is a class name; a JSON or Parquet value that is
neither (true/false, a float, an object) is refused, naming the line.
"""

from __future__ import annotations

import csv
import datetime
import decimal
import io
import json
import math
import os
import re
import tempfile
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from ...errors import SourceError
from ..tarindex import IndexedMember

TABLE_EXTENSIONS = (".csv", ".jsonl", ".parquet")
MAX_TABLE_BYTES = 256 << 20  # ~2.5M rows of file name, label and a few attributes
MAX_CELL_BYTES = 64 << 10
MAX_COLUMNS = 1000
MAX_DEPTH = 32
MAX_NAME_BYTES = 255  # a class or split name becomes a folder name
MAX_INTEGER_LABEL = 999_999  # integer labels index a class list of that many entries

Row = dict[str, Any]


def read_table(member: IndexedMember, read: Callable[[IndexedMember], bytes],
               where: str) -> list[tuple[int, Row]]:
    """(line or row number, row) of the table `member` (its extension says the format),
    read only once its size is known to be within bounds."""
    ext = os.path.splitext(member.path)[1].lower()
    if ext not in TABLE_EXTENSIONS:
        raise SourceError(f"{where}: a labels table must end in {', '.join(TABLE_EXTENSIONS)}")
    if member.size > MAX_TABLE_BYTES:
        raise SourceError(f"{where}: {member.size:,} bytes, more than the {MAX_TABLE_BYTES:,} "
                          "a labels table may hold; split the source, or keep fewer columns")
    data = read(member)
    try:
        if ext == ".csv":
            return list(_csv(data, where))
        if ext == ".jsonl":
            return list(_jsonl(data, where))
        return _parquet(data, where)
    except UnicodeDecodeError as exc:
        raise SourceError(f"{where}: not UTF-8 text (byte {exc.start})") from None


def _csv(data: bytes, where: str) -> Iterator[tuple[int, Row]]:
    text = data.decode("utf-8-sig")
    limit = csv.field_size_limit()
    csv.field_size_limit(MAX_CELL_BYTES)
    try:
        lines = io.StringIO(text, newline="")
        reader = csv.reader(lines)
        header = next(reader, None)
        if header is None:
            return
        _check_columns(header, where, 1)
        start = reader.line_num + 1  # the line the next row starts on
        for values in reader:
            if values and len(values) != len(header):
                # a row over several lines up to the end: a quote opened and never closed
                open_quote = reader.line_num > start and lines.tell() == len(text)
                raise SourceError(
                    f"{where}:{start}: a row with "
                    f"{'more' if len(values) > len(header) else 'fewer'} fields than the "
                    "header" + (f" (it runs to the end, line {reader.line_num}: a quote "
                                "left open?)" if open_quote else ""))
            if values:  # (not a blank line)
                yield reader.line_num, dict(zip(header, values, strict=True))
            start = reader.line_num + 1
    except csv.Error as exc:
        why = f"a cell longer than {MAX_CELL_BYTES:,} bytes" if "field larger" in str(exc) \
            else str(exc)
        raise SourceError(f"{where}: not a readable CSV table ({why})") from None
    finally:
        csv.field_size_limit(limit)


def _jsonl(data: bytes, where: str) -> Iterator[tuple[int, Row]]:
    for i, line in enumerate(data.decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        if _depth_exceeds(line):
            raise SourceError(f"{where}:{i}: JSON nested more than {MAX_DEPTH} deep")
        try:
            row = json.loads(line, object_pairs_hook=_no_repeats)
        except json.JSONDecodeError as exc:
            raise SourceError(f"{where}:{i}: not JSON ({exc.msg})") from None
        except RecursionError:  # (the depth scan above should have caught it)
            raise SourceError(f"{where}:{i}: JSON nested too deep") from None
        except _RepeatedKey as exc:
            raise SourceError(f"{where}:{i}: key {exc.args[0]!r} appears twice; readers "
                              "disagree on which one counts") from None
        if not isinstance(row, dict):
            raise SourceError(f"{where}:{i}: a JSON Lines row must be an object")
        _check_columns(list(row), where, i)
        yield i, {k: json_value(v, f"{where}:{i}: {k}") for k, v in row.items()}


class _RepeatedKey(ValueError):
    pass


def _no_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    twice = next((k for i, k in enumerate(keys) if k in keys[:i]), None)
    if twice is not None:
        raise _RepeatedKey(twice)
    return dict(pairs)


def parse_json(text: str, where: str) -> Any:
    """A JSON document of at most `MAX_DEPTH` levels, as JSON values; bad JSON is a
    SourceError naming `where` (e.g. a WebDataset sample's `.json`)."""
    if _depth_exceeds(text):
        raise SourceError(f"{where}: JSON nested more than {MAX_DEPTH} deep")
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise SourceError(f"{where}: not JSON ({getattr(exc, 'msg', exc)})") from None


_BRACKETS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _depth_exceeds(text: str) -> bool:
    """Whether brackets outside strings nest more than MAX_DEPTH deep (no recursion)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return False
    depth = 0
    for token in _BRACKETS.findall(text):
        if token in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif token in "]}":
            depth -= 1
    return False


def _check_columns(names: list[Any], where: str, line: int) -> None:
    if len(names) > MAX_COLUMNS:
        raise SourceError(f"{where}:{line}: {len(names):,} columns, more than {MAX_COLUMNS}")
    twice = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if twice is not None:
        raise SourceError(f"{where}:{line}: column {twice!r} appears twice; readers disagree "
                          "on which one counts")
    for name in names:
        if not isinstance(name, str) or len(name.encode()) > MAX_NAME_BYTES:
            raise SourceError(f"{where}:{line}: column name {str(name)[:40]!r}... is longer "
                              f"than {MAX_NAME_BYTES} bytes")


def json_value(value: Any, where: str, depth: int = 0) -> Any:
    """`value` as a JSON value (see the module docstring); what has none is refused."""
    if depth > MAX_DEPTH:
        raise SourceError(f"{where}: nested more than {MAX_DEPTH} deep")
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, (datetime.date, datetime.time)):  # (datetime is a date)
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return str(value)  # exact ("1 day, 0:00:01.234568"); Parquet's come as text
    if isinstance(value, dict):
        return {str(k): json_value(v, where, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(v, where, depth + 1) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise SourceError(f"{where}: binary data; a labels table names files and their "
                          "labels (images inside a table are not a layout this reads)")
    raise SourceError(f"{where}: a value of type {type(value).__name__}, which has no JSON "
                      "form")


def _parquet(data: bytes, where: str) -> list[tuple[int, Row]]:
    import duckdb

    with tempfile.TemporaryDirectory(prefix="registry-table-") as tmp:
        path = os.path.join(tmp, "table.parquet")
        with open(path, "wb") as f:
            f.write(data)
        try:
            rel = duckdb.read_parquet(path)
            # intervals as DuckDB writes them ("1 month 3 days 00:00:01"): a Python
            # timedelta has no months; decimals as their exact text
            rel = rel.project(", ".join(
                f'CAST("{c}" AS VARCHAR) AS "{c}"' if str(t).startswith(("INTERVAL", "DECIMAL"))
                else f'"{c}"' for c, t in zip(rel.columns, rel.types, strict=True)))
            columns = rel.columns
            _check_columns(columns, where, 1)
            return [(i, {c: json_value(v, f"{where}: row {i}: {c}")
                         for c, v in zip(columns, values, strict=True)})
                    for i, values in enumerate(rel.fetchall(), 1)]
        except duckdb.Error as exc:
            why = str(exc).splitlines()[0].replace(path, where)  # not our temporary copy
            raise SourceError(f"{where}: not a readable Parquet table ({why})") from None


def labels(rows: list[tuple[int, Row]], column: str, where: str) -> list[str | int | None]:
    """Each row's label (see the module docstring): an int, a class name, or None (no
    label: the column is absent, empty or null there). Numbers become values only when
    every one is written the one way a number is (`7`, not `07` or `-1`) and fits a class
    list (0 to MAX_INTEGER_LABEL); any other column is class names, as it always was."""
    raw = [row.get(column) for _, row in rows]
    for (line, _), value in zip(rows, raw, strict=True):
        if value is not None and value != "" and (
                isinstance(value, bool) or not isinstance(value, (int, str))):
            raise SourceError(f"{where}:{line}: {column} is {json.dumps(value)[:60]}: a label "
                              "is a class name (text) or a whole number")
    texts = [v for v in raw if isinstance(v, str) and v != ""]
    numbers = [v for v in raw if isinstance(v, int)]
    if texts and numbers:  # a JSON or Parquet column of both
        line = next(line for (line, _), v in zip(rows, raw, strict=True) if isinstance(v, str)
                    and v != "")
        raise SourceError(f"{where}:{line}: {column}: {texts[0]!r} mixes whole numbers and "
                          "class names in one column; write every label the same way")
    as_values = (bool(numbers) and all(map(_index, numbers))) or \
        (bool(texts) and all(map(_index, texts)))
    if not as_values:
        _say_stray_numbers(rows, raw, column, where)
    out: list[str | int | None] = []
    for (line, _), value in zip(rows, raw, strict=True):
        if value is None or value == "":
            out.append(None)
        elif as_values:
            out.append(int(value))
        else:
            name = str(value)
            check_name(name, f"{where}:{line}: {column}", "class name")
            out.append(name)
    return out


_CANONICAL = re.compile(r"0|[1-9][0-9]*")  # a whole number as str(int) writes it
_DIGITS = len(str(MAX_INTEGER_LABEL))  # (a longer one is larger: only that many are read)
# a number as written with a sign, a point or an exponent: never a class index
_SIGNED_OR_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _index(value: int | str) -> bool:
    """Whether a label is a class index: a whole number from 0 to MAX_INTEGER_LABEL (as
    text, written as str(int) writes it)."""
    if isinstance(value, int):
        return 0 <= value <= MAX_INTEGER_LABEL
    return bool(_CANONICAL.fullmatch(value)) and int(value[:_DIGITS + 1]) <= MAX_INTEGER_LABEL


def _say_stray_numbers(rows: list[tuple[int, Row]], raw: list[Any], column: str,
                       where: str) -> None:
    """A column of class indices but for a few numbers that are not (-1 written for "no
    label", a typed 2.5, one past the largest index) is read as class names, sorted as
    text, as such columns always were (their keys depend on it): every class renumbered
    ('3' after '2.5'). Said, naming the first such label, so that it is not silent."""
    import sys

    example = next((v for v in raw if v is not None and v != "" and _index(v)), None)
    if example is None:
        return
    for (line, _), value in zip(rows, raw, strict=True):
        if value is None or value == "" or _index(value):
            continue
        # (a zero-padded code, "07", is a name: padded ones sort as their numbers do)
        if isinstance(value, int) or _CANONICAL.fullmatch(value) or \
                (not value.isdigit() and _SIGNED_OR_DECIMAL.fullmatch(value)):
            print(f"note: {where}:{line}: {column}: {str(value)!r} is a number but not a class "
                  f"index (a whole number from 0 to {MAX_INTEGER_LABEL:,}) as other labels of "
                  f"the column are ({str(example)!r}), so the column's labels are class "
                  "names, sorted as text, each class numbered by its place: to keep their "
                  "values, write each label as a class index, or leave the cell empty for no "
                  "label", file=sys.stderr)
            return


def check_name(name: str, where: str, what: str) -> None:
    """A class or split name becomes a folder name and a field of tab-separated files:
    one path component (no '/', '\\', '.' or '..'), no tab, line break or NUL, at most
    255 bytes, not empty."""
    if not name.strip():
        raise SourceError(f"{where}: an empty {what}")
    if name in (".", "..") or "/" in name or "\\" in name:
        raise SourceError(f"{where}: {what} {name[:60]!r} cannot be a folder name (no '/', "
                          "'\\', '.' or '..')")
    bad = next((c for c in name if c in "\t\n\r\0"), None)
    if bad is not None:
        raise SourceError(f"{where}: {what} {name[:60]!r} holds a {_CONTROL[bad]}")
    if len(name.encode()) > MAX_NAME_BYTES:
        raise SourceError(f"{where}: {what} {name[:40]!r}... is {len(name.encode()):,} bytes, "
                          f"more than {MAX_NAME_BYTES}")


_CONTROL = {"\t": "tab", "\n": "line break", "\r": "carriage return", "\0": "NUL"}
