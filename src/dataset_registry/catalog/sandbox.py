"""Sandboxed reads: which statements a query may hold, and running one on a worker thread
so the timeout and Ctrl-C reach it."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from ..errors import QueryRefusedError, QueryTimeoutError
from .schema import _first_line

MEMORY_LIMIT = "1GB"  # what one query may hold in memory ...
SPILL_LIMIT = "4GB"  # ... and spill to its private temp folder
_SANDBOX = {"enable_external_access": False, "lock_configuration": True,
            "autoload_known_extensions": False, "autoinstall_known_extensions": False,
            "memory_limit": MEMORY_LIMIT, "max_temp_directory_size": SPILL_LIMIT}
_READ_STATEMENTS = ("SELECT", "EXPLAIN")  # COPY, PRAGMA, SET, ATTACH, ... never run


def _refuse_statements(sql: str) -> None:
    import duckdb

    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryRefusedError(f"query failed: {_first_line(exc)}") from None
    for statement in statements:
        kind = str(statement.type).rsplit(".", 1)[-1]
        if kind not in _READ_STATEMENTS:
            raise QueryRefusedError(f"query refused: only SELECT runs on the catalog "
                                    f"(read-only and sandboxed), not {kind}: "
                                    f"{statement.query.strip()[:60]}")


def _run(con: Any, sql: str, params: Sequence[Any], timeout: float | None
         ) -> tuple[list[str], list[tuple]]:
    """Run on a worker thread, so Ctrl-C and the timeout reach us here and interrupt it."""
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def work() -> None:
        try:
            cur = con.execute(sql, params)
            columns = [d[0] for d in cur.description] if cur.description else []
            outcome["result"] = (columns, cur.fetchall())
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc
        finally:
            done.set()

    def stop() -> None:  # until it has stopped: an interrupt before it started is lost
        while not done.wait(0.2):
            con.interrupt()

    threading.Thread(target=work, daemon=True).start()
    try:
        finished = done.wait(timeout if timeout and timeout > 0 else None)
    except KeyboardInterrupt:
        stop()
        raise
    if not finished:
        stop()
        if "result" not in outcome:
            raise QueryTimeoutError(f"query stopped after {timeout:g}s (the --timeout); "
                                    "narrow it, or give it more time with --timeout S")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]
