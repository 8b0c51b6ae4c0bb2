"""What the CLI prints beside plain lines: tables, and progress bars on a terminal."""

from __future__ import annotations

import sys
from typing import Any


def table(columns: list[str], rows: list[tuple]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        print("\t".join(columns))
        for row in rows:
            print("\t".join("" if v is None else str(v) for v in row))
        return
    table = Table(*columns)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    console.print(table)


# What a spreadsheet runs as a formula when a cell starts with it (OWASP, "CSV
# injection"): such text cells get a leading apostrophe, which shows, and runs nothing.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def write_csv(columns: list[str], rows: list[tuple]) -> None:
    """CSV on stdout, text cells (headers too) that a spreadsheet would run as formulas
    escaped; numbers are not text, so a negative number stays a number."""
    import csv

    def safe(value: Any) -> Any:
        if isinstance(value, str) and value.startswith(FORMULA_STARTS):
            return "'" + value
        return value

    writer = csv.writer(sys.stdout)
    writer.writerow([safe(c) for c in columns])
    writer.writerows([safe(v) for v in row] for row in rows)


def progress_factory() -> Any:
    if not sys.stderr.isatty():
        return None
    from contextlib import contextmanager

    @contextmanager
    def progress(label: str, total: int) -> Any:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
        )

        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TaskProgressColumn(), TimeRemainingColumn(), transient=True) as bar:
            task = bar.add_task(label, total=total)
            yield lambda n: bar.advance(task, n)

    return progress
