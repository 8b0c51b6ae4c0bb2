"""When code the registry runs but did not write fails: a recipe's `plan`, `run`,
`follow` or `finish` (a plugin's, or a bug in a built-in one). It reaches the user as one
line naming the dataset, the recipe and, where known, the member, never as a traceback
from deep inside a worker:

- in whichever process runs a task, `executors.run_task` turns what `recipe.run` raised
  into a `RecipeError` naming the recipe and the member it was processing (the one
  `members.read_members` handed out last), its traceback kept as text (`details`);
- on the coordinator, `recipe_code(node, recipe, phase)` does the same for `plan`,
  `follow` and `finish`, and names the dataset (its manifest's file:line and its name) in
  every RecipeError, the workers' included; what fails between the two (a task, its
  params or its result that does not pickle) is named as such.

A RegistryError a recipe raises on purpose (a BadImageError naming the image, say) keeps
its message and exit code; an OSError keeps the one line naming its file the CLI prints;
Ctrl-C stays an interruption. `registry --debug` (or DATASET_REGISTRY_DEBUG=1) prints the
traceback (`details`) as well.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from ..errors import BadInputError, RecipeError, RegistryError


class Named(Protocol):
    """What a failure names: a dataset (manifest.DatasetNode) and where it is declared."""

    name: str
    where: str

DEBUG_ENV = "DATASET_REGISTRY_DEBUG"
DEBUG_HINT = "(run with --debug for the traceback)"

# What a recipe's own code may raise that is not a RegistryError: any Exception, and a
# sys.exit() too (it must not end the build, or the CLI, silently).
Raised = (Exception, SystemExit)


def debugging() -> bool:
    """Whether tracebacks are wanted: `registry --debug` sets DATASET_REGISTRY_DEBUG=1."""
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def summary(exc: BaseException, limit: int = 300) -> str:
    """`Type: the first line of its message` (the type alone when the message is empty),
    cut at `limit` characters (an exception may hold the repr of a whole task list)."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def root_cause(exc: BaseException) -> BaseException:
    """The exception at the bottom of the chain `exc` came from: what pickle said, where
    Dask raised its own "Could not serialize" from it. A process pool's cause is the
    worker's traceback as text (`_RemoteTraceback`), not an error: it stops there."""
    while True:
        below = exc.__cause__ or exc.__context__
        if below is None or type(below).__name__ == "_RemoteTraceback":
            return exc
        exc = below


def traceback_text(exc: BaseException) -> str:
    import traceback  # here: every command imports this module, few print a traceback

    return "".join(traceback.format_exception(exc))


def recipe_error(exc: BaseException, recipe: str, phase: str,
                 member: str | None = None) -> RecipeError:
    """What `recipe`'s `phase` raised, as one line (the dataset is added by `recipe_code`)."""
    on = f" on member {member!r}" if member else ""
    return RecipeError(f"recipe {recipe!r} failed in {phase}{on}: {summary(exc)}",
                       traceback_text(exc))


def in_dataset(exc: RecipeError, node: Named) -> RecipeError:
    """`exc` with the dataset it was building named first (once)."""
    if getattr(exc, "dataset", None):
        return exc
    named = RecipeError(f"{node.where}: {node.name}: {exc.message}", exc.details)
    named.dataset = node.name  # type: ignore[attr-defined]
    return named


@contextmanager
def recipe_code(node: Named, recipe: str, phase: str) -> Iterator[None]:
    """Around a call into recipe code on the coordinator (`phase`: plan, follow, finish),
    or around `Executor.map` (`phase` "run": the tasks, wherever they run)."""
    try:
        yield
    except RecipeError as exc:
        raise in_dataset(exc, node) from None
    except BadInputError as exc:
        if phase != "plan":
            raise
        # plan checks the inputs: say which manifest entry asked for them
        named = type(exc)(f"{node.where}: {node.name}: {exc.message}")
        named.details = exc.details
        raise named from None
    except (RegistryError, OSError):
        raise
    except Raised as exc:
        if phase != "run":
            raise in_dataset(recipe_error(exc, recipe, phase), node) from exc
        # run_task wraps what the recipe raised: this failed on the way to or from a worker
        why = summary(root_cause(exc))
        hint = " (a task, the params and the result must pickle to reach a worker " \
            "process)" if "pickl" in why.lower() else ""
        raise in_dataset(RecipeError(f"recipe {recipe!r}: its tasks could not be run: "
                                     f"{why}{hint}", traceback_text(exc)), node) from exc


def guarded(follow: Callable[[int, Any], None] | None, recipe: str
            ) -> Callable[[int, Any], None] | None:
    """A recipe's `follow` callback, whose failure names it (it runs inside `map`)."""
    if follow is None:
        return None

    def call(index: int, result: Any) -> None:
        try:
            follow(index, result)
        except (RegistryError, OSError):
            raise
        except Raised as exc:
            raise recipe_error(exc, recipe, "follow") from exc

    return call
