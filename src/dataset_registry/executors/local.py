"""Tasks on a local process pool (fork-server workers, `processes.worker_context`), or
inline with one worker."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import BuildError
from ..stores.base import Drop
from .base import Executor, OnResult, Progress, arrived, part_name, run_task, warm_up

if TYPE_CHECKING:
    from ..core.interrupts import HeldInterrupts
    from ..core.processes import Spawning
    from ..recipes.base import Recipe


def start_worker(coordinator: int) -> None:
    """Pool initializer: the worker watches the coordinator (killed, even with SIGKILL, it
    takes its workers along) and keeps the pages its tasks free for the next task."""
    from ..core.heap import reuse_freed_pages
    from ..core.processes import watch_coordinator

    watch_coordinator(coordinator)
    reuse_freed_pages()


GUARD = ("a script that calls resolve() with jobs > 1 must do so under `if __name__ == "
         "'__main__':`, as multiprocessing requires")


def _not_importing_main() -> None:
    """Refuse a build on a pool while a worker process imports the caller's script (as
    multiprocessing's workers do): a script calling resolve() outside `if __name__ ==
    '__main__':` would build again in there, and wait for the build lock its coordinator
    holds while that waits for the worker: a hang, not an error. This process dies of the
    refusal, and the coordinator's pool then fails naming the guard (`_failed`).
    multiprocessing makes the same test where it starts a process (`spawn`'s
    `_check_not_importing_main`), which a build here would reach only after the lock. A
    resolve() that builds nothing (what is built is only looked up) is never refused."""
    import multiprocessing

    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise BuildError(f"resolve() with jobs > 1 was called while the script was imported "
                         f"by a worker process: {GUARD}")


class LocalExecutor(Executor):
    """Tasks on a local process pool (`jobs` workers); inline when jobs == 1."""

    def __init__(self, jobs: int | None = None) -> None:
        self.jobs = max(1, jobs or os.cpu_count() or 1)
        self._pool: Any = None
        self._starting: Spawning | None = None
        self._let_go_pools: list[Any] = []  # (their workers let go: close waits for them)

    def check(self) -> None:
        if self.jobs > 1:
            _not_importing_main()

    def prepare(self) -> None:
        if self.jobs == 1 or self._pool is not None:
            return
        from ..core.processes import Spawning, worker_context
        from ..core.workerpool import WorkerPool

        self._pool = WorkerPool(max_workers=self.jobs, mp_context=worker_context(),
                                initializer=start_worker, initargs=(os.getpid(),))
        # Spawning waits for the fork server, which on its first start imports the
        # preload (~0.5 s on 2 cores): every worker is spawned and warmed on a thread, so
        # the coordinator plans meanwhile; map() submits its tasks as the workers come up,
        # and waits for the rest before it collects the results.
        self._starting = Spawning(self._pool, self.jobs, warm_up)

    def _join_start(self, poll: Callable[[], None] | None = None, *, stop: bool = False
                    ) -> BaseException | None:
        """Wait for the thread starting the workers (see `Spawning.join`); what it failed
        with, if anything."""
        if self._starting is None:
            return None
        # (forgotten only once joined: interrupted by `poll`, it is still there for close)
        error = self._starting.join(poll, stop=stop)
        self._starting = None
        return error

    def _started(self, poll: Callable[[], None] | None = None) -> None:
        """Wait for the workers to start (see `Spawning.join`). A BuildError (the pool
        closed) if they could not; where a worker died meanwhile, every task's future says
        so, and the collecting reports it."""
        exc = self._join_start(poll)
        if exc is not None and not self._broken(exc):
            raise self._failed(exc) from exc

    def _broken(self, exc: BaseException) -> bool:
        from concurrent.futures.process import BrokenProcessPool

        return isinstance(exc, BrokenProcessPool) or bool(getattr(self._pool, "_broken", False))

    def _failed(self, exc: BaseException) -> BuildError:
        """The error a pool that broke or could not start its workers fails the build with,
        the pool closed first."""
        broken = self._broken(exc)
        self.close()
        if broken:
            return BuildError(f"a worker process died (killed, out of memory, or it could not "
                              f"start: {GUARD})")
        return BuildError(f"could not start the worker processes: {exc}")

    def let_go(self) -> None:
        """The workers exit while the caller goes on; `close` waits for them, and a later
        `map` starts new ones. At 96,000 images the wait took 5-12 ms after the last build
        (2 cores); let go as it ends, it overlaps the catalog's record."""
        if self._pool is not None and self._starting is None:
            pool, self._pool = self._pool, None
            pool.let_go()
            self._let_go_pools.append(pool)

    def close(self, *, stop: bool = False) -> None:
        """Shut the pool down; `stop`: end the running tasks too (terminate the workers), and
        return only once every worker is gone, so that none writes into the staging area
        the caller removes next."""
        self._join_start(stop=stop)
        from ..core.processes import shut_down

        while self._let_go_pools:  # (no task runs there: nothing to stop)
            shut_down(self._let_go_pools.pop())
        if self._pool is not None:
            pool, self._pool = self._pool, None
            shut_down(pool, stop=stop)

    def map(self, recipe: type[Recipe], params: Any, tasks: Sequence[Any], drop: Drop,
            progress: Progress | None = None, on_result: OnResult | None = None) -> list[Any]:
        if self.jobs == 1 or len(tasks) <= 1:
            results: list[Any] = [None] * len(tasks)
            for i, task in enumerate(tasks):
                arrived(results, i, run_task(recipe, params, task, drop, part_name(i)),
                        task, progress, on_result)
            return results
        from concurrent.futures.process import BrokenProcessPool

        from ..core.interrupts import HeldInterrupts

        self.prepare()
        pool = self._pool
        futures: dict[Any, int] = {}
        results = [None] * len(tasks)
        # an interrupt is acted on between waits, never inside one: core/interrupts.py
        with HeldInterrupts() as held:
            arrivals = Arrivals(held)
            try:
                for i, task in enumerate(tasks):
                    try:
                        future = pool.submit(run_task, recipe, params, task, drop,
                                             part_name(i))
                    except (OSError, BrokenProcessPool) as exc:  # the first worker (a
                        # submit starts it where there is none yet) or a worker died
                        raise self._failed(exc) from exc
                    futures[future] = i
                    arrivals.expect(future)
                # submitted while the workers still start: those up take the first tasks
                # (core/workerpool.py); an interrupt meanwhile acts as in the collecting
                self._started(held.deliver)
                self._collect(futures, arrivals, results, tasks, progress, on_result)
            except (KeyboardInterrupt, SystemExit):
                # Interrupted (Ctrl-C, SIGTERM): stop the tasks now, before the caller
                # removes the staging they write into; waiting for them could take minutes.
                self.close(stop=True)
                raise
            except BaseException:
                # A task failed, or `on_result` (a recipe's follower) did: the others are
                # cancelled, and those running end before the caller removes their staging
                # (or, interrupted meanwhile, are stopped).
                for other in futures:
                    other.cancel()
                try:
                    arrivals.drain()
                except BaseException:
                    self.close(stop=True)
                    raise
                raise
        return results

    def _collect(self, futures: dict[Any, int], arrivals: Arrivals, results: list[Any],
                 tasks: Sequence[Any], progress: Progress | None,
                 on_result: OnResult | None) -> None:
        from concurrent.futures.process import BrokenProcessPool

        # each result as its task ends, not all at the end: on_result (a recipe's
        # follower) and progress run meanwhile
        for _ in range(len(futures)):
            fut = arrivals.next()
            exc = fut.exception()
            if isinstance(exc, BrokenProcessPool):
                raise self._failed(exc) from exc
            if exc is not None:
                raise exc  # map cancels the others
            i = futures[fut]
            arrived(results, i, fut.result(), tasks[i], progress, on_result)


class Arrivals:
    """The pool's futures in the order they finish: each one's done callback puts it on a
    queue (a look a future; waiting on the pending set instead, FIRST_COMPLETED, takes
    every pending future's lock at each return, quadratic in the tasks), with a look every
    POLL seconds at the interrupts `held` noted (raised here, outside any wait)."""

    POLL = 0.2  # seconds: an interrupt noted during a wait acts at most this late

    def __init__(self, held: HeldInterrupts) -> None:
        from queue import SimpleQueue

        self._queue: SimpleQueue[Any] = SimpleQueue()
        self._held = held
        self._expected = 0

    def expect(self, future: Any) -> None:
        self._expected += 1
        future.add_done_callback(self._queue.put)  # (SimpleQueue.put: reentrant, in C)

    def next(self) -> Any:
        """The next future to finish, once it has."""
        from queue import Empty

        while True:
            try:
                future = self._queue.get(timeout=self.POLL)
            except Empty:
                self._held.deliver()
                continue
            self._held.deliver()
            self._expected -= 1
            return future

    def drain(self) -> None:
        """Wait until every expected future has finished (or been cancelled)."""
        while self._expected:
            self.next()
