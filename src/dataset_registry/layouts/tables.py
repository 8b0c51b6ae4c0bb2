"""Label tables a layout reads: CSV, JSON Lines or Parquet, each row a dict, with the
line (or row) it came from for messages."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from typing import Any

from ..errors import SourceError

TABLE_EXTENSIONS = (".csv", ".jsonl", ".parquet")


def read_table(name: str, data: bytes, where: str) -> list[tuple[int, dict[str, Any]]]:
    """(line or row number, row) of the table `name` (its extension says the format)."""
    ext = os.path.splitext(name)[1].lower()
    try:
        if ext == ".csv":
            text = data.decode("utf-8-sig")
            reader = csv.DictReader(io.StringIO(text, newline=""))
            rows = []
            for row in reader:
                if None in row or None in row.values():
                    raise SourceError(f"{where}:{reader.line_num}: a row with "
                                      f"{'more' if None in row else 'fewer'} fields than the "
                                      "header")
                rows.append((reader.line_num, row))
            return rows
        if ext == ".jsonl":
            rows = []
            for i, line in enumerate(data.decode("utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise SourceError(f"{where}:{i}: a JSON Lines row must be an object")
                rows.append((i, row))
            return rows
        if ext == ".parquet":
            return _parquet(data, where)
    except UnicodeDecodeError as exc:
        raise SourceError(f"{where}: not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise SourceError(f"{where}:{exc.lineno}: not JSON ({exc.msg})") from None
    except csv.Error as exc:
        raise SourceError(f"{where}: not a readable CSV table ({exc})") from None
    raise SourceError(f"{where}: a labels table must end in {', '.join(TABLE_EXTENSIONS)}")


def _parquet(data: bytes, where: str) -> list[tuple[int, dict[str, Any]]]:
    import duckdb

    with tempfile.TemporaryDirectory(prefix="registry-table-") as tmp:
        path = os.path.join(tmp, "table.parquet")
        with open(path, "wb") as f:
            f.write(data)
        try:
            rel = duckdb.read_parquet(path)
            columns = rel.columns
            return [(i, dict(zip(columns, values, strict=True)))
                    for i, values in enumerate(rel.fetchall(), 1)]
        except duckdb.Error as exc:
            raise SourceError(f"{where}: not a readable Parquet table "
                              f"({str(exc).splitlines()[0]})") from None
