"""Ctrl-C and SIGTERM held while the coordinator waits on its pool, acted on between waits.

A Python signal handler runs in the main thread between two bytecodes, wherever those are.
Raising there inside `concurrent.futures.wait` can leave futures' locks taken: its
`_AcquireFutures` takes them one by one and has no way back from an exception midway. The
pool's manager thread then blocks for ever setting such a future's result, and so does the
shutdown that stops the workers (a SIGTERMed build that never exits). Raised while tasks
are being handed out, it left workers writing into a staging area being removed. So while
`HeldInterrupts` is on, SIGINT and SIGTERM handlers that are Python functions (Ctrl-C's
KeyboardInterrupt, the CLI's Terminated) only note the signal, and `deliver()` runs the
noted handlers where the caller can unwind. Handlers that are not Python functions (the
default SIGTERM, which ends the process at once; an ignored signal) are left as they are.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import TracebackType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class HeldInterrupts:
    """`with HeldInterrupts() as held:` SIGINT and SIGTERM noted, not raised;
    `held.deliver()` raises what their own handlers raise, and so does leaving the block
    (unless an interrupt is already on its way out). Only the main thread has signal
    handlers: elsewhere nothing is held. Nested, the inner one hands what it notes to the
    outer one's `deliver`."""

    def __init__(self) -> None:
        self._handlers: dict[int, Any] = {}
        self._noted: list[int] = []  # distinct, in the order they came
        self._holding = False

    def __enter__(self) -> HeldInterrupts:
        if threading.current_thread() is not threading.main_thread():
            return self
        self._holding = True
        try:
            for signum in SIGNALS:
                handler = signal.getsignal(signum)
                if callable(handler):
                    self._handlers[signum] = handler
                    signal.signal(signum, self._note)
        except BaseException:  # (a signal between two swaps: none left swapped)
            self._restore()
            raise
        return self

    def _note(self, signum: int, frame: Any) -> None:
        if not self._holding:  # (left installed by a signal amid the swaps: not held)
            self._handlers[signum](signum, frame)
        elif signum not in self._noted:
            self._noted.append(signum)

    def deliver(self) -> None:
        """Run the noted signals' own handlers here, in the order the signals came, up to
        the first that raises (typically the first)."""
        while self._noted:
            signum = self._noted.pop(0)
            handler = self._handlers[signum]
            outer = getattr(handler, "__self__", None)
            if isinstance(outer, HeldInterrupts):  # nested: the outer one's to act on
                outer._note(signum, None)
                outer.deliver()
            else:
                handler(signum, sys._getframe(1))

    def _restore(self) -> None:
        self._holding = False
        for signum, handler in self._handlers.items():
            signal.signal(signum, handler)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._restore()
        if kind is None or not issubclass(kind, KeyboardInterrupt | SystemExit):
            self.deliver()  # noted after the last look: acted on now
        self._noted.clear()
