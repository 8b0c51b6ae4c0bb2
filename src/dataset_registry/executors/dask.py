"""Tasks on a Dask cluster (dask.distributed), which does the scheduling.

`dask://HOST:PORT` connects to a running scheduler (started by hand, by
dask-jobqueue on SLURM, or by dask-kubernetes); `dask://local` starts a
`LocalCluster` of `jobs` single-threaded worker processes for this build.
Tasks write through their `Drop` (straight to the store); only their small
results come back. A task whose worker dies is run again elsewhere by the
scheduler (up to its `distributed.scheduler.allowed-failures`, then the build
fails cleanly); tasks are idempotent: they write the same bytes to the same
names. A task that raises is not retried: its error is the build's error.
On a scheduler given by address, the project's own plugin modules are shipped to the
cluster before the tasks (project_code.py): its workers cannot import them otherwise.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..core.failures import debugging
from ..errors import BadInputError, BuildError
from ..stores.base import Drop
from .base import Executor, OnResult, Progress, arrived, part_name, run_task, warm_up

if TYPE_CHECKING:
    from ..recipes.base import Recipe

INSTALL = "pip install 'dataset-registry[dask]'"


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise BadInputError(f"the Dask executor needs dask.distributed: {INSTALL}") from None
    return distributed


@contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """Distributed's own log of an error we report ourselves, left out (unless --debug)."""
    log = logging.getLogger(logger)
    level = log.level
    if not debugging():
        log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)


class DaskExecutor(Executor):
    @classmethod
    def from_spec(cls, address: str, jobs: int | None) -> DaskExecutor:
        if not address:
            raise BadInputError("executor 'dask://': name a scheduler (dask://HOST:PORT) or "
                                "dask://local")
        return cls(address, jobs)

    def __init__(self, address: str = "local", jobs: int | None = None, *,
                 connect_timeout: str = "20s") -> None:
        self.address = address
        self.connect_timeout = connect_timeout
        self.local = address == "local"
        self.jobs = max(1, jobs or os.cpu_count() or 1) if self.local else None
        self._client: Any = None
        self._cluster: Any = None
        self._shipped: str | None = None  # the digest of the project code on the cluster

    @property
    def client(self) -> Any:
        if self._client is None:
            self.prepare()
        return self._client

    def prepare(self) -> None:
        if self._client is not None:
            return
        distributed = _distributed()
        if self.local:
            self._cluster = distributed.LocalCluster(
                n_workers=self.jobs, threads_per_worker=1, processes=True,
                dashboard_address=":0",
                # a failed task is the build's one-line error (failures.py): its workers'
                # log of it ("Compute Failed" and the traceback) only with --debug
                silence_logs=logging.WARN if debugging() else logging.CRITICAL)
            self._client = distributed.Client(self._cluster)
        else:
            try:
                self._client = distributed.Client(f"tcp://{self.address}",
                                                  timeout=self.connect_timeout)
            except OSError as exc:
                raise BuildError(f"cannot reach the Dask scheduler at {self.address}: "
                                 f"{exc}") from None
            self.jobs = sum(self._client.nthreads().values()) or None
        self._client.run(warm_up)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    def map(self, recipe: type[Recipe], params: Any, tasks: Sequence[Any], drop: Drop,
            progress: Progress | None = None, on_result: OnResult | None = None) -> list[Any]:
        distributed = _distributed()
        client = self.client
        if not self.local:  # a LocalCluster's workers share this process's sys.path
            from .project_code import ship

            self._shipped = ship(client, self._shipped)
        n = len(tasks)
        with _quiet("distributed.protocol.pickle"):  # a task that does not pickle: one line
            futures = client.map(run_task, [recipe] * n, [params] * n, list(tasks),
                                 [drop] * n, [part_name(i) for i in range(n)],
                                 pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        results: list[Any] = [None] * n
        try:
            for future in distributed.as_completed(futures):
                if future.status == "error":
                    exc = future.exception()
                    if type(exc).__name__ == "KilledWorker":
                        raise BuildError(f"Dask workers kept dying running a {recipe.name} "
                                         f"task ({exc}); no artifact was written") from None
                    raise exc
                i = index[future.key]
                arrived(results, i, future.result(), tasks[i], progress, on_result)
        except BaseException:
            # A task already running on a worker cannot be interrupted; what it still
            # writes lands in staging (removed) or as unmarked files (gc's to sweep). So
            # does a killed coordinator's: a rerun resuming its staging area renames it
            # first, so those writes never reach the rerun's (engine/resume.py).
            client.cancel(futures)
            raise
        return results
