"""A query's worker thread (catalog/sandbox._run) is stopped, whenever Ctrl-C comes, before
its connection is closed: DuckDB refuses to close a connection while its query runs
("connection is busy"), and the query would run on into the process's exit."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import duckdb

from dataset_registry.catalog import sandbox

LONG = "SELECT sum(a.range * b.range) FROM range(300000) a, range(300000) b"  # minutes


class LosesFirstInterrupt:
    """A connection whose first interrupt is lost, as one sent before the query began."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con, self.interrupts = con, 0

    def execute(self, *args):
        return self.con.execute(*args)

    def interrupt(self) -> None:
        self.interrupts += 1
        if self.interrupts > 1:
            self.con.interrupt()


def _threading(start, wait=None) -> SimpleNamespace:
    """The module's `threading`, with Thread.start and Event.wait given."""

    class Thread(threading.Thread):
        def start(self) -> None:
            start(super().start)

    class Event(threading.Event):
        def wait(self, timeout=None):
            return wait(super().wait, timeout) if wait else super().wait(timeout)

    return SimpleNamespace(Thread=Thread, Event=Event)


def _interrupted(con) -> float:
    """Run LONG through `_run` on a thread of its own (the shim raises Ctrl-C's exception
    there); it must raise KeyboardInterrupt within 10 s. Then the seconds closing `con` took."""
    raised: list[BaseException] = []

    def call() -> None:
        try:
            sandbox._run(con, LONG, (), None)
        except BaseException as exc:  # (what it raised is the test's)
            raised.append(exc)

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    caller.join(10)
    assert not caller.is_alive(), "_run did not return within 10 s of Ctrl-C"
    assert [type(e) for e in raised] == [KeyboardInterrupt]
    started = time.monotonic()
    (getattr(con, "con", con)).close()
    return time.monotonic() - started


def test_ctrl_c_as_the_thread_starts_stops_the_query(monkeypatch):
    def start(real):
        real()
        time.sleep(0.3)  # (the query runs)
        raise KeyboardInterrupt

    monkeypatch.setattr(sandbox, "threading", _threading(start))
    assert _interrupted(duckdb.connect()) < 5


def test_a_second_ctrl_c_while_stopping_is_acted_on_once_the_query_stopped(
        monkeypatch, ctrl_c_raises):
    """Real signals, on the main thread: Ctrl-C as the query runs, and another in the stop's
    first wait (whose first interrupt was lost, as one sent before the query began). The
    second is held until the query has stopped, then raised."""
    import os
    import signal

    sent = []

    def start(real):
        real()
        time.sleep(0.3)  # (the query runs)
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: raised here, before start() returns

    def wait(real, timeout):
        if not sent:  # the second Ctrl-C, in the stop's first wait
            sent.append(True)
            os.kill(os.getpid(), signal.SIGINT)
        return real(timeout)

    monkeypatch.setattr(sandbox, "threading", _threading(start, wait))
    con = LosesFirstInterrupt(duckdb.connect())
    watchdog = threading.Timer(20, con.con.interrupt)  # (a regression: ends the query)
    watchdog.start()
    try:
        started = time.monotonic()
        try:
            sandbox._run(con, LONG, (), None)
        except KeyboardInterrupt:
            pass
        else:
            raise AssertionError("no KeyboardInterrupt")
        assert time.monotonic() - started < 10 and watchdog.is_alive()
    finally:
        watchdog.cancel()
    assert sent and con.interrupts >= 2
    closing = time.monotonic()
    con.con.close()
    assert time.monotonic() - closing < 5


def test_ctrl_c_before_the_thread_started_stops_nothing(monkeypatch):
    def start(real):
        raise KeyboardInterrupt  # (before the thread exists)

    monkeypatch.setattr(sandbox, "threading", _threading(start))
    started = time.monotonic()
    assert _interrupted(duckdb.connect()) < 1
    assert time.monotonic() - started < sandbox.STARTED_WITHIN + 2


def test_a_query_that_ends_is_answered():
    con = duckdb.connect()
    assert sandbox._run(con, "SELECT 42 AS answer", (), 5) == (["answer"], [(42,)])
