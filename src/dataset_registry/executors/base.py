"""The executor abstraction: run a recipe's tasks somewhere, results back in plan order.

A task sees only its recipe name, params, payload and the `Drop` it writes
into; it never touches the catalog. Results come back in plan order, so output
is identical whatever the executor or the number of workers. Backends (`local`,
`dask`) subclass `Executor`; every backend passes the conformance suite in
dataset_registry.testing.executors.ExecutorSuite.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..artifact.output import Output
from ..errors import BadInputError, RegistryError
from ..stores.base import Drop

if TYPE_CHECKING:
    from ..recipes.base import Recipe

Progress = Callable[[int], None]
OnResult = Callable[[int, Any], None]


def run_task(recipe: type[Recipe], params: Any, task: Any, drop: Drop, part: str) -> Any:
    """Run one task in whatever process this is (a pool worker, a Dask worker, inline).
    `recipe` is the class itself, pickled by reference: the worker imports its module,
    so a recipe from a plugin needs no registration there. What `recipe.run` raises that
    is not a RegistryError comes back as a RecipeError naming the recipe and the member
    it was processing, its traceback as text (see failures.py)."""
    from ..core.failures import Raised, recipe_error
    from ..sources.members import MemberRef, member_in_hand, put_down, use_remote

    use_remote(drop.remote)
    folder = drop.folder()
    try:
        out = Output(folder, part, ranged=drop.ranged)
        try:
            put_down()
            result = recipe.run(params, task, out)
        finally:
            out.close()
    except OSError as exc:  # a recipe's own write (into Output.open) on a full disk, say
        from ..artifact.output import write_error

        drop.discard(folder)
        raise write_error(exc.filename or folder, exc) from None
    except RegistryError:
        drop.discard(folder)
        raise
    except Raised as exc:
        drop.discard(folder)
        ref = member_in_hand() or (task if isinstance(task, MemberRef) else None)
        raise recipe_error(exc, recipe.name, "run", ref.origin if ref else None) from None
    except BaseException:
        drop.discard(folder)
        raise
    drop.ship(folder)
    return result


def task_size(task: Any) -> int:
    return len(task) if hasattr(task, "__len__") else 1


def arrived(results: list[Any], index: int, result: Any, task: Any,
            progress: Progress | None, on_result: OnResult | None) -> None:
    """A task's result is in: keep it in plan order, then tell whoever listens."""
    results[index] = result
    if on_result:
        on_result(index, result)
    if progress:
        progress(task_size(task))


def part_name(index: int) -> str:
    return f"{index:06d}"


def warm_up() -> None:
    """Import what tasks need, in a fresh worker, while the coordinator plans."""
    import PIL.Image  # noqa: F401
    import xxhash  # noqa: F401

    from .. import recipes  # noqa: F401
    from ..artifact import output  # noqa: F401
    from ..recipes import imaging  # noqa: F401


class Executor(ABC):
    jobs: int | None = None  # workers, where known (recorded in the marker)

    @classmethod
    def from_spec(cls, address: str, jobs: int | None) -> Executor:
        """The executor a spec `NAME://ADDRESS` names (open_executor); ADDRESS may be ""."""
        if address:
            raise BadInputError(f"executor {cls.__name__}: takes no address, got {address!r}")
        return cls(jobs)  # type: ignore[call-arg]

    @abstractmethod
    def map(self, recipe: type[Recipe], params: Any, tasks: Sequence[Any], drop: Drop,
            progress: Progress | None = None, on_result: OnResult | None = None) -> list[Any]:
        """Run every task; return results in plan order; on the first task error, cancel
        the rest and raise it. `on_result(index, result)` sees each result as it arrives
        (in any order), on the calling thread."""

    def check(self) -> None:  # noqa: B027 - optional hook
        """Refuse (a BuildError), before a build takes its lock, what would keep this
        executor's workers from ever starting; optional."""

    def prepare(self) -> None:  # noqa: B027 - optional hook
        """Start workers ahead of the first `map` (called before planning); optional."""

    def let_go(self) -> None:  # noqa: B027 - optional hook
        """No task comes after: let the workers go while the caller goes on (`close` still
        follows); optional."""

    def close(self) -> None:  # noqa: B027 - optional hook
        pass
