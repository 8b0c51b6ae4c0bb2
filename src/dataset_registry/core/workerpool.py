"""The process pool a build's tasks run on: `ProcessPoolExecutor`, whose workers start while
its first tasks already run.

`processes.Spawning` starts a pool's workers on a thread, one at a time (each waits for the
fork server: 10-30 ms on the 16-core machine, more while it still imports its preload). A
plain pool's submit spawns a worker of its own wherever none is idle yet, holding the
pool's lock for the fork server's reply; the pool's manager thread, which takes that lock
to hand tasks out, then waited for every worker to start, no task running meanwhile
(0.15-0.5 s of a 16-worker build). While `spawning`, this one's submits leave the spawning
to `Spawning`, which lets go of the lock after each worker: the tasks submitted meanwhile go
to the workers already up. Its own module: `concurrent.futures.process` costs ~25 ms to
import, which the commands that start no pool do not pay."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor


class WorkerPool(ProcessPoolExecutor):
    spawning = False  # set by processes.Spawning while it starts the workers

    def _adjust_process_count(self) -> None:
        if not self.spawning:  # (private: where ProcessPoolExecutor's submit spawns)
            super()._adjust_process_count()
