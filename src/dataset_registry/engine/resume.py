"""Resumable builds: the finished tasks of a killed build, kept in its staging area.

A task's files land in staging as it runs; its provenance part is named by its place in
this run (`executors.base.part_name`). When its result reaches the coordinator, the part
is renamed after the task's index in the plan (`t000042.files.csv`), then its done record
is appended to `.parts/done.log`, last: one line holding the task's identity (the build's
key, its index and its pickled content) and its pickled result. A rerun of the same key
in that staging area (`Store.resume`) trusts a task only if its line reads back whole and
names this very task; every other part is removed and those tasks run again, writing the
same names. `finalize` takes `.parts` out (put aside, then removed), done records
included: nothing of this is ever published. Local stores only: elsewhere the parts are
not in the coordinator's folder until `gather`.

One log, appended, not a file a task written atomically (two opens and a rename each):
the records cost the coordinator 0.3-0.5 s of a build of 96,000 small images on 2 cores, taken
from the workers. A line cut short (killed mid-write, a full disk) reads back as damaged
and its task runs again; the rerun first rewrites the log with its sound lines alone, so
a line it appends never continues a cut one.

Only the coordinator writes done records, and a killed one writes none; but a task it
started may still be running (a Dask worker outlives its coordinator) and write parts
and files, named by its own run's places, into that staging area. So the rerun takes the
area over under a new name (`LocalStore.resume`): what the stale task opens from then on
lies under the old path, in a folder of its own that gc sweeps, and none of its parts is
merged or trusted.
"""

from __future__ import annotations

import base64
import contextlib
import copyreg
import io
import json
import os
import pickle
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import xxhash

from ..artifact.marker import DONE_LOG, PARTS
from ..core.atomic import write_atomic
from ..executors.base import part_name

if TYPE_CHECKING:
    from ..executors import Executor
    from .imagechecks import VerdictParts

# a task's parts: `<part>.files.csv`, `<part>.skipped.csv`, and `<part>.checked.csv`, the
# verdicts of the images it decoded (kept with the task: the cache takes them at the end)
_KINDS = ("files", "skipped", "checked")


def task_identity(key: str, index: int, task: Any) -> str | None:
    """What a done record must name to stand for task `index` of the build of `key`; None
    when the task does not pickle (it is then never reused)."""
    content = io.BytesIO()
    try:
        _Identity(content, protocol=5).dump(task)
    except Exception:  # an unpicklable task is simply not resumable
        return None
    return xxhash.xxh3_128_hexdigest(f"{key}\0{index}\0".encode() + content.getvalue())


class _Identity(pickle.Pickler):
    """A task's pickle without the image-check verdicts its member sets carry: a verdict
    is what the task's own decode would reach (recipes/imagecheck.py), so a task given
    more of them (a rerun on more workers that checked first, engine/checkfirst.py, or a
    cache grown since) writes what it wrote without, and its done record stands."""

    def reducer_override(self, obj: Any) -> Any:
        from ..sources.members import MemberSet

        if type(obj) is not MemberSet or (obj.checks is None and obj.refusals is None):
            return NotImplemented
        state = {**obj.__getstate__(), "checks": None, "refusals": None}
        return copyreg.__newobj__, (MemberSet,), state  # type: ignore[attr-defined]


class FinishedTasks:
    """The done records of the build of `key` in the staging folder `root`."""

    def __init__(self, root: str, key: str, tasks: Sequence[Any]) -> None:
        self.parts = os.path.join(root, PARTS)
        self.log = os.path.join(self.parts, DONE_LOG)
        self.key, self.tasks = key, tasks
        self._identities: dict[int, str | None] = {}

    def identity(self, index: int) -> str | None:
        """Task `index`'s identity (`task_identity`), computed where first asked for: as a
        done record is read back, or as the task's result comes in. Not all of them before
        the first task runs: pickling every task held it back (72 ms at 96,000 images, on
        a coordinator that waits anyway once its tasks are out). A task is a value its run
        does not change (on a pool it runs on a copy), so its identity is the same then."""
        if index not in self._identities:
            self._identities[index] = task_identity(self.key, index, self.tasks[index])
        return self._identities[index]

    def load(self) -> dict[int, Any]:
        """The results of the tasks already finished, by index. Whatever else lies in
        `.parts` (a part of a task cut short, a record that does not read back or names
        another task) is removed, so those tasks run again from nothing; the log keeps
        the sound records alone, each a whole line."""
        found: dict[int, Any] = {}
        sound: dict[int, tuple[bytes, list[str]]] = {}
        try:
            with open(self.log, "rb") as f:
                lines = f.read().split(b"\n")
        except FileNotFoundError:
            lines = []
        for line in lines:
            record = self._read(line)
            if record is not None:
                index, result, parts = record
                found[index], sound[index] = result, (line, parts)
        if lines:  # (rewritten whole: an append never continues a line cut short)
            write_atomic(self.log, b"".join(line + b"\n" for line, _ in sound.values()))
        kept = {part for _, parts in sound.values() for part in parts}
        for name in os.listdir(self.parts) if os.path.isdir(self.parts) else []:
            if name.endswith(".csv") and name not in kept:
                _remove(os.path.join(self.parts, name))
        return found

    def _read(self, line: bytes) -> tuple[int, Any, list[str]] | None:
        """(index, result, part files) of a sound done record; None for anything else."""
        try:
            record = json.loads(line)
            index = record["index"]
            if type(index) is not int or not 0 <= index < len(self.tasks):
                return None
            pickled = base64.b64decode(record["result"], validate=True)
            parts = [str(p) for p in record["parts"]]
            if record["task"] != self.identity(index) or self.identity(index) is None \
                    or record["check"] != xxhash.xxh3_128_hexdigest(pickled) \
                    or not all(os.path.isfile(os.path.join(self.parts, p)) for p in parts):
                return None
            return index, pickle.loads(pickled), parts  # checked: the bytes recorded
        except Exception:  # damaged in any way: run the task again
            return None

    def record(self, index: int, position: int, result: Any) -> list[str]:
        """Task `index` (run as `position` of this run's tasks) finished with `result`:
        its parts take its index's name, then its done record is appended, last. A result
        that does not pickle leaves the task unrecorded (it runs again on a rerun). The
        names of its parts, as they are now."""
        identity = self.identity(index)
        try:
            pickled = pickle.dumps(result, protocol=5)
        except Exception:  # not resumable, built all the same
            return self._as_run(position)
        if identity is None:
            return self._as_run(position)
        parts = []
        for kind in _KINDS:
            name = f"t{part_name(index)}.{kind}.csv"
            try:
                os.replace(os.path.join(self.parts, f"{part_name(position)}.{kind}.csv"),
                           os.path.join(self.parts, name))
            except FileNotFoundError:  # (a task writes no part of a kind it has no rows of)
                continue
            parts.append(name)
        line = json.dumps({
            "index": index, "task": identity, "parts": parts,
            "check": xxhash.xxh3_128_hexdigest(pickled),
            "result": base64.b64encode(pickled).decode("ascii")}) + "\n"
        _append(self.log, line.encode("ascii"))
        return parts

    @staticmethod
    def _as_run(position: int) -> list[str]:
        return [f"{part_name(position)}.{kind}.csv" for kind in _KINDS]


def _append(path: str, data: bytes) -> None:
    """`data` at the end of the file `path` (made if need be), with O_APPEND's single
    writes: never interleaved with another's, and cut short only by a kill or a full disk."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
    try:
        fd = os.open(path, flags, 0o666)
    except FileNotFoundError:  # (no task wrote a part yet)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, flags, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def run_resumable(executor: Executor, recipe: Any, params: Any, tasks: list[Any],
                  drop: Any, advance: Callable[[int], None] | None,
                  follow: Callable[[int, Any], None] | None,
                  finished: FinishedTasks | None, done: dict[int, Any],
                  verdicts: VerdictParts | None = None) -> list[Any]:
    """Every task's result, in plan order: those in `done` (finished by a killed build
    of this key) as recorded, the others run now, each recorded in `finished` as it
    arrives (and its image checks' verdicts read into `verdicts`). The follower sees
    every result, the reused ones first."""
    from ..executors.base import task_size

    if finished is None:
        return executor.map(recipe, params, tasks, drop, advance, follow)
    left = [i for i in range(len(tasks)) if i not in done]
    for index in sorted(done):
        if follow:
            follow(index, done[index])
        if advance:
            advance(task_size(tasks[index]))

    def arrived(position: int, result: Any) -> None:
        parts = finished.record(left[position], position, result)
        if verdicts is not None:
            with contextlib.suppress(OSError, ValueError):  # (read again at the end)
                for name in parts:
                    verdicts.read(name)
        if follow:
            follow(left[position], result)

    ran = executor.map(recipe, params, [tasks[i] for i in left], drop, advance,
                       arrived) if left else []
    results = [done.get(i) for i in range(len(tasks))]
    for index, result in zip(left, ran, strict=True):
        results[index] = result
    return results
