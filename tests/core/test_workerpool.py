"""The build's process pool (core/workerpool.py)."""

from dataset_registry.core.processes import worker_context
from dataset_registry.core.workerpool import WorkerPool


def test_a_pool_let_go_is_waited_for_by_its_shutdown_even_let_go_twice():
    """`let_go` tells the workers to exit and returns; the shutdown after it returns only
    once they have (a second `let_go` must not make it forget them)."""
    pool = WorkerPool(max_workers=2, mp_context=worker_context())
    assert sorted(pool.map(abs, [-1, -2, -3, -4])) == [1, 2, 3, 4]
    workers = list(pool._processes.values())
    pool.let_go()
    pool.let_go()
    pool.shutdown(wait=True)
    assert len(workers) == 2 and [w.exitcode for w in workers] == [0, 0]
