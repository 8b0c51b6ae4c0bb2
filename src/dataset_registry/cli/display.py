"""What the CLI prints beside plain lines: tables, and progress bars on a terminal."""

from __future__ import annotations

import os
import sys
from typing import Any


def table(columns: list[str], rows: list[tuple]) -> None:
    """A table on a terminal, tab-separated lines otherwise. Nothing is ever cut: a
    terminal too narrow for the table (names like `imagenet-min-calibration-first.1.dup.5`
    at 80 columns) gets one line per row instead, the columns aligned (`aligned`)."""
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    if not _maybe_terminal():  # a pipe or a file: plain lines, rich not even imported
        _tab_separated(columns, cells)
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console()
    if not console.is_terminal:
        _tab_separated(columns, cells)
        return
    grid = Table(*columns)
    for row in cells:
        grid.add_row(*(Text(v) for v in row))  # cells are text, not rich markup
    natural = console.measure(grid, options=console.options.update_width(1 << 16)).maximum
    if natural <= console.width:  # (measured unbounded: rich caps it at the width)
        console.print(grid)
    else:
        header, *lines = aligned(columns, cells)
        console.print(Text(header, style="bold"), soft_wrap=True)  # the terminal wraps
        for line in lines:
            console.print(Text(line), soft_wrap=True)


def _maybe_terminal() -> bool:
    """Whether rich could take stdout for a terminal: a tty, or the variables by which it
    takes a pipe for one (TTY_COMPATIBLE, FORCE_COLOR). Asked before rich is imported,
    which takes tens of milliseconds: a `registry sql` into a pipe never pays it."""
    if "TTY_COMPATIBLE" in os.environ or "FORCE_COLOR" in os.environ:
        return True
    try:
        return sys.stdout.isatty()
    except ValueError:  # closed
        return False


def _tab_separated(columns: list[str], cells: list[list[str]]) -> None:
    print("\t".join(columns))
    for row in cells:
        print("\t".join(row))


def aligned(columns: list[str], rows: list[list[str]]) -> list[str]:
    """The header and one line per row, each column padded to its widest cell (the last
    column not), two spaces between."""
    from rich.cells import cell_len

    lines = [columns, *rows]
    widths = [max(cell_len(line[i]) for line in lines) for i in range(len(columns))]
    return ["  ".join(v + " " * (widths[i] - cell_len(v)) if i < len(line) - 1 else v
                      for i, v in enumerate(line)).rstrip() for line in lines]


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
    """Progress bars on stderr while it is a terminal (see core/progress.py), else None:
    a pipe, a log file or a CI job gets no progress noise, and stdout (what scripts read,
    `$(registry resolve NAME)`) never gets any."""
    if not sys.stderr.isatty():
        return None
    from contextlib import contextmanager

    @contextmanager
    def progress(label: str, total: int | None, unit: str = "items") -> Any:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        counted = [DownloadColumn(), TransferSpeedColumn()] if unit == "bytes" else \
            [MofNCompleteColumn(), TextColumn(unit)]
        with Progress(TextColumn("{task.description}"), BarColumn(), *counted,
                      TaskProgressColumn(), TimeRemainingColumn(), transient=True,
                      console=Console(stderr=True)) as bar:
            task = bar.add_task(label, total=total)
            yield lambda n: bar.advance(task, n)

    return progress


def print_json(document: Any) -> None:
    """A command's --json output: one JSON document on stdout (non-JSON values, such as
    a datetime from the catalog, as their text)."""
    import json

    print(json.dumps(document, indent=2, default=str))
