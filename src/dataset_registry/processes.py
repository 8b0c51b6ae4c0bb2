"""The one multiprocessing context every process pool here uses.

Workers come from a fork server: a clean process that never holds the
coordinator's threads (progress bars) or DuckDB connection. There is one fork
server per coordinator process, and what it imports before forking is fixed
by whoever starts it first (the synthetic generator, say, before a build), so
every pool asks for it here, with the same preload: the caller's main module
(as multiprocessing's default does) and the modules tasks need. Without them
each new worker imports numpy, pydantic and the recipes itself: ~0.4 s on 2
cores; with 16 workers starting at once the first task began 1.2-1.4 s into a
build.
"""

from __future__ import annotations

from typing import Any

PRELOAD = ["__main__", "dataset_registry.recipes", "dataset_registry.imaging"]


def worker_context() -> Any:
    import multiprocessing

    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx
