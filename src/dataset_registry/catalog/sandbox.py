"""Sandboxed reads: which statements a query may hold, running one on a worker thread so
the timeout and Ctrl-C reach it, and whether a writer waits for the file meanwhile."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import QueryRefusedError, QueryTimeoutError
from .schema import _first_line

MEMORY_LIMIT = "1GB"  # what one query may hold in memory ...
SPILL_LIMIT = "4GB"  # ... and spill to its private temp folder
_SANDBOX = {"enable_external_access": False, "lock_configuration": True,
            "autoload_known_extensions": False, "autoinstall_known_extensions": False,
            "memory_limit": MEMORY_LIMIT, "max_temp_directory_size": SPILL_LIMIT}
_READ_STATEMENTS = ("SELECT", "EXPLAIN")  # COPY, PRAGMA, SET, ATTACH, ... never run


def _refuse_statements(con: Any, sql: str) -> None:
    """Refuse `sql` unless each of its statements is a read. Parsed on the query's own
    connection `con`: duckdb.extract_statements would first make DuckDB's default one
    (a database of its own, ~15 ms, a tenth of a whole `registry sql`)."""
    import duckdb

    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryRefusedError(f"query failed: {_first_line(exc)}") from None
    for statement in statements:
        kind = str(statement.type).rsplit(".", 1)[-1]
        if kind not in _READ_STATEMENTS:
            raise QueryRefusedError(f"query refused: only SELECT runs on the catalog "
                                    f"(read-only and sandboxed), not {kind}: "
                                    f"{statement.query.strip()[:60]}")
    if not statements:
        raise QueryRefusedError("query refused: it holds no statement (empty, or only "
                                "comments)")
    if len(statements) > 1:  # (DuckDB would answer the last alone, the others dropped)
        raise QueryRefusedError(f"query refused: one statement at a time, and this holds "
                                f"{len(statements)}: run each on its own")


def _sandbox_refused(exc: BaseException) -> bool:
    """Whether DuckDB's error `exc` is the sandbox refusing (a file, the network, a write to
    the read-only catalog), not the query failing on its own (`error('...')`, bad JSON:
    also InvalidInputException)."""
    import duckdb

    return isinstance(exc, duckdb.PermissionException) or (
        isinstance(exc, duckdb.InvalidInputException) and "read-only" in str(exc))


def _writer_waits(lock: str) -> bool:
    """Whether a writer holds the writers' lock file `lock` (a writer takes it before it
    opens the catalog, and waits there for a reader's hold on the file to end). Probed with
    a shared flock, released at once, on a descriptor opened read-only: nothing is made or
    written. A lock file not there yet has no holder (the first writer makes it); one that
    cannot be probed (no flock here) counts as held, so the query reads a copy, as before."""
    import fcntl

    try:
        fd = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:
        return False
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True  # held (EWOULDBLOCK), or flock unsupported: a copy is the safe side
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


class Yielded(Exception):
    """A query on the catalog itself stopped because a writer wants the file: it goes on on
    a private copy (see Catalog.query)."""


YIELD_POLL = 0.05  # how often a query on the catalog itself asks whether a writer waits
STARTED_WITHIN = 1.0  # s: a started thread is alive long before (its bootstrap's first step)


def _run(con: Any, sql: str, params: Sequence[Any], timeout: float | None, *,
         spent: float = 0.0, yield_to: Callable[[], bool] | None = None
         ) -> tuple[list[str], list[tuple]]:
    """Run on a worker thread, so Ctrl-C and the timeout reach us here and interrupt it.

    `spent`: seconds of the timeout already used (by a run that yielded). `yield_to`: asked
    every YIELD_POLL s; once it says True the query is stopped and Yielded raised."""
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

    def stop() -> None:
        """Interrupt the query until it has stopped (an interrupt before it starts is lost),
        Ctrl-C and SIGTERM held meanwhile and acted on then: the caller's `con.close()`
        fails on a connection still running a query ("connection is busy"), and the query
        would run on into the process's exit. A worker not alive after STARTED_WITHIN s and
        not done never started (the Ctrl-C came inside `start()`): nothing to stop."""
        from ..core.interrupts import HeldInterrupts

        since = time.monotonic()
        with HeldInterrupts():
            while not done.is_set():
                if not worker.is_alive() and time.monotonic() - since > STARTED_WITHIN:
                    break
                con.interrupt()
                done.wait(0.2)

    deadline = time.monotonic() - spent + timeout if timeout and timeout > 0 else None
    worker = threading.Thread(target=work, daemon=True)
    try:  # (the start too: a Ctrl-C as it returns would leave the query running unstopped)
        worker.start()
        finished = yielded = False
        while not finished and not yielded:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            wait = left if yield_to is None else min(YIELD_POLL, left or YIELD_POLL)
            finished = done.wait(wait)
            yielded = not finished and yield_to is not None and yield_to()
    except KeyboardInterrupt:
        stop()
        raise
    if not finished:
        stop()
        if "result" not in outcome:
            if yielded:
                raise Yielded()
            raise QueryTimeoutError(f"query stopped after {timeout:g}s (the --timeout); "
                                    "narrow it, or give it more time with --timeout S")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]
