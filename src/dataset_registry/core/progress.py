"""Progress a long step reports to whoever shows it (the CLI's bars on a terminal).

A front end passes a *factory*: `factory(label, total, unit="items")` is a context
manager for one step, giving `advance(n)` to call as work is done; `total` may be None
(unknown: a folder source's bytes before it is walked). `unit` says what is counted:
"items" (a build's tasks' images), "files" (a transfer), "bytes" (source indexing),
"images" (synth). With no factory (off a terminal, or the API's default) `bar` gives a
no-op `advance`, so the code that does the work calls it either way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

Advance = Callable[[int], None]
ProgressFactory = Callable[..., Any]  # (label, total, unit=...) -> ContextManager[Advance]


def _nothing(n: int) -> None:
    pass


@contextmanager
def bar(factory: ProgressFactory | None, label: str, total: int | None,
        unit: str = "items") -> Iterator[Advance]:
    """One step's `advance`: the factory's, or a no-op without one."""
    if factory is None:
        yield _nothing
        return
    with factory(label, total, unit=unit) as advance:
        yield advance or _nothing


class Counted:
    """An `advance` that keeps count, so that a second reading of the same work (a strict
    reader's after a fast one gave up, the serial reading after a pool's) is not counted
    twice: the bar would pass 100%."""

    def __init__(self, advance: Advance | None) -> None:
        self.advance, self.done = advance, 0

    def __call__(self, n: int) -> None:
        self.done += n
        if self.advance:
            self.advance(n)

    def again(self) -> Advance | None:
        """The `advance` for the second reading: silent until it has read past the first."""
        if not self.advance:
            return None
        left = [self.done]
        advance = self.advance

        def after(n: int) -> None:
            counted = min(n, left[0])
            left[0] -= counted
            if n > counted:
                advance(n - counted)

        return after
