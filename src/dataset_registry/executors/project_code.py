"""A project's own plugin modules (registry.toml `plugins`, files in the project folder),
shipped to a Dask cluster.

A scheduler and workers started elsewhere (by hand, SLURM, Kubernetes) cannot import a
file of the coordinator's project folder, yet a task names its recipe's class by
reference (`my_plugin.MyRecipe`) and the scheduler unpickles the tasks too: without
the module there, the build fails with "No module named 'my_plugin'". So the Dask
executor sends the modules' bytes as a scheduler plugin and a worker plugin. Each
writes them into a folder named by their digest under its server's local directory,
puts that folder first on sys.path and imports them afresh (an earlier version
forgotten), so a plugin edited between two builds runs as edited on a long-lived
cluster. Registered under one name, a shipment replaces the last one, and a worker that
joins later (a nanny's replacement for a killed one) loads it as it starts.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import shutil
import sys
from dataclasses import dataclass
from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin, WorkerPlugin

NAME = "dataset-registry-project-code"
FOLDER = "registry-project-code"  # under a Dask server's local directory


@dataclass(frozen=True)
class Shipment:
    modules: tuple[str, ...]  # the top-level names to import
    files: tuple[tuple[str, bytes], ...]  # (path relative to the import folder, bytes)
    digest: str


def shipment(modules: dict[str, str]) -> Shipment | None:
    """The files of `modules` (top-level name -> a .py file or a package folder); None
    when there are none."""
    files: list[tuple[str, bytes]] = []
    for name, path in sorted(modules.items()):
        if not os.path.exists(path):  # gone since it was imported: nothing to send
            continue
        if not os.path.isdir(path):
            with open(path, "rb") as f:
                files.append((f"{name}.py", f.read()))
            continue
        for folder, subfolders, names in os.walk(path):
            subfolders[:] = sorted(d for d in subfolders if d != "__pycache__")
            for file in sorted(names):
                if file.endswith((".pyc", ".pyo")):
                    continue
                full = os.path.join(folder, file)
                with open(full, "rb") as f:
                    relative = os.path.relpath(full, path).replace(os.sep, "/")
                    files.append((f"{name}/{relative}", f.read()))
    if not files:
        return None
    digest = hashlib.sha256()
    for relative, data in files:
        digest.update(f"{relative}\0{len(data)}\0".encode())
        digest.update(data)
    names = tuple(sorted({relative.split("/")[0].removesuffix(".py") for relative, _ in files}))
    return Shipment(names, tuple(files), digest.hexdigest()[:16])


def load(code: Shipment, local_directory: str) -> None:
    """In a Dask scheduler or worker: write `code` out (once) and import it afresh."""
    base = os.path.join(local_directory, FOLDER)
    folder = os.path.join(base, code.digest)
    if not os.path.isdir(folder):
        partial = f"{folder}.partial-{os.getpid()}"
        for relative, data in code.files:
            target = os.path.join(partial, relative)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as f:
                f.write(data)
        try:
            os.replace(partial, folder)
        except OSError:  # written meanwhile by another process sharing the folder
            if not os.path.isdir(folder):
                raise
            shutil.rmtree(partial, ignore_errors=True)
    sys.path[:] = [folder] + [p for p in sys.path if os.path.dirname(p) != base]
    for name in code.modules:
        for loaded in [m for m in sys.modules if m == name or m.startswith(f"{name}.")]:
            del sys.modules[loaded]
    importlib.invalidate_caches()
    for name in code.modules:
        importlib.import_module(name)


class WorkerCode(WorkerPlugin):
    def __init__(self, code: Shipment) -> None:
        self.code = code

    def setup(self, worker: Any) -> None:
        load(self.code, worker.local_directory)


class SchedulerCode(SchedulerPlugin):
    def __init__(self, code: Shipment) -> None:
        self.code = code

    async def start(self, scheduler: Any) -> None:
        load(self.code, scheduler.local_directory)


def ship(client: Any, shipped: str | None) -> str | None:
    """Send this process's project plugin modules to the scheduler and workers of
    `client`, unless the digest `shipped` says they are there already; the digest sent.
    A module that does not import there is a BuildError naming it."""
    from .. import plugins
    from ..core.failures import summary
    from ..errors import BuildError

    code = shipment(plugins.project_modules())
    if code is None or code.digest == shipped:
        return shipped
    try:
        client.register_plugin(SchedulerCode(code), name=NAME)  # kept only if it loaded
        try:
            client.register_plugin(WorkerCode(code), name=NAME)
        except Exception:
            # kept by the scheduler even where it failed: workers joining later would
            # fail to start on it
            with contextlib.suppress(Exception):
                client.unregister_worker_plugin(NAME)
            raise
    except Exception as exc:
        raise BuildError(f"the project's plugin modules ({', '.join(code.modules)}) do not "
                         f"load on the Dask cluster: {summary(exc)}") from None
    return code.digest
