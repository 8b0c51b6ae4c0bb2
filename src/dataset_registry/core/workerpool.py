"""The process pool a build's tasks run on: `ProcessPoolExecutor`, whose workers start while
its first tasks already run.

`processes.Spawning` starts a pool's workers on a thread, one at a time (each waits for the
fork server: 10-30 ms on the 16-core machine, more while it still imports its preload). A
plain pool's submit spawns a worker of its own wherever none is idle yet, holding the
pool's lock for the fork server's reply: tasks submitted while the workers started went in
one spawn at a time, so the first workers up had little to run. And where the submits waited
for every worker instead, no task ran until the last had started (0.07-0.58 s after the
fork server was ready, in 16-worker builds). While `spawning`, this pool's submits leave the
spawning to `Spawning` once a first worker is there: they go in at once, and the workers up
take them while the rest start. Its own module: `concurrent.futures.process` costs ~25 ms to
import, which the commands that start no pool do not pay."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor


class WorkerPool(ProcessPoolExecutor):
    spawning = False  # set by processes.Spawning while it starts the workers

    def _adjust_process_count(self) -> None:
        # (private: where ProcessPoolExecutor's submit spawns.) With no worker yet, a task
        # submitted would wait on a spawning that may fail: the submit starts one itself.
        if not self.spawning or not self._processes:
            super()._adjust_process_count()

    _let_go = None  # the manager thread of a pool `let_go`, for `shutdown` to wait for

    def let_go(self) -> None:
        """No task comes after: the workers are told to exit, and do while the caller goes
        on (a build records itself meanwhile); `shutdown` then waits for them."""
        if self._let_go is None:  # (a second let_go: the thread is forgotten by now)
            self._let_go = self._executor_manager_thread
        super().shutdown(wait=False)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        let_go, self._let_go = self._let_go, None
        super().shutdown(wait=wait, cancel_futures=cancel_futures)
        if wait and let_go is not None:
            let_go.join()  # (its shutdown forgot the thread, not its workers' exit)
