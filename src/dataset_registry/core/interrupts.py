"""Ctrl-C and SIGTERM held while the coordinator waits on its pool, acted on between waits.

A Python signal handler runs in the main thread between two bytecodes, wherever those are.
Raising there inside `concurrent.futures.wait` can leave futures' locks taken: its
`_AcquireFutures` takes them one by one and has no way back from an exception midway. The
pool's manager thread then blocks for ever setting such a future's result, and so does the
shutdown that stops the workers (a SIGTERMed build that never exits). So while `Held` is
on, SIGINT and SIGTERM handlers that are Python functions (Ctrl-C's KeyboardInterrupt, the
CLI's Terminated) only note the signal, and `deliver()` runs the noted handler where the
caller can unwind. Handlers that are not Python functions (the default SIGTERM, which ends
the process at once; an ignored signal) are left as they are.
"""

from __future__ import annotations

import signal
import threading
from types import TracebackType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)
POLL = 0.2  # seconds a holder waits at most between looks (a noted Ctrl-C acts this late)


class Held:
    """`with Held() as held:` SIGINT and SIGTERM noted, not raised; `held.deliver()` raises
    what their handlers raise, and so does leaving the block (unless an interrupt is
    already on its way out). Only the main thread has signal handlers: elsewhere nothing
    is held."""

    def __init__(self) -> None:
        self._handlers: dict[int, Any] = {}
        self._noted: list[int] = []

    def __enter__(self) -> Held:
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                handler = signal.getsignal(signum)
                if callable(handler):
                    self._handlers[signum] = handler
                    signal.signal(signum, self._note)
        return self

    def _note(self, signum: int, frame: Any) -> None:
        self._noted.append(signum)

    def deliver(self) -> None:
        """Run the first noted signal's own handler here (it raises, typically); later
        ones are dropped: one interrupt unwinds the build."""
        if self._noted:
            signum = self._noted[0]
            self._noted.clear()
            self._handlers[signum](signum, None)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for signum, handler in self._handlers.items():
            signal.signal(signum, handler)
        if kind is None or not issubclass(kind, KeyboardInterrupt | SystemExit):
            self.deliver()  # noted after the last look: acted on now
        self._noted.clear()
