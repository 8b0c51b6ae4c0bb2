"""What a recipe is: a versioned, pure function from inputs and params to files.

A recipe splits its work into independent, picklable tasks (`plan`, on the
coordinator), runs one task anywhere (`run`, in a worker: it sees only the
task and the params), and writes its indexes (`finish`, on the coordinator).
What `plan` worked out and `finish` needs again (a selection, a class scheme)
travels as the plan's `context` (`Plan`), so `finish` never plans twice.
Recipes know nothing of stores, catalogs or executors: they write through an
`Output` and read through `MemberRef`s.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from ..artifact.output import Output
    from ..sources.index import MemberSet

InputKind = Literal["images", "file"]


@dataclass(frozen=True)
class InputSpec:
    kind: InputKind
    required: bool = True
    doc: str = ""


class Params(BaseModel):
    """Base of every recipe's params: strict, unknown fields are errors."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    added_later: ClassVar[frozenset[str]] = frozenset()
    """Fields added to a recipe version that had already shipped, whose default builds the
    same bytes from every input the version already built: while such a field holds its
    default it stays out of the key, so adding it keeps every shipped key (see `keyed`)."""

    def keyed(self) -> dict[str, Any]:
        """The params as they enter the key: every field with its default filled, except an
        `added_later` field still at its default."""
        values = self.model_dump(mode="json")
        for name in self.added_later:
            default = type(self).model_fields[name].get_default(call_default_factory=True)
            if getattr(self, name) == default:
                values.pop(name, None)
        return values


@dataclass
class Inputs:
    """What a recipe's `plan` and `finish` see: image sets and shipped files by role."""

    images: Mapping[str, MemberSet]
    files: Mapping[str, str]  # role -> local path of a shipped file or folder


class Plan(list[Any]):
    """What `plan` may return instead of a bare list: the tasks (it is that list), and a
    `context` for `finish`, which receives it. The context stays on the coordinator:
    only tasks travel to workers, so it need not pickle."""

    def __init__(self, tasks: Iterable[Any] = (), context: Any = None) -> None:
        super().__init__(tasks)
        self.context = context


def finish(recipe: type[Recipe], params: Any, inputs: Inputs, results: list[Any],
           out: Output, tasks: list[Any]) -> None:
    """Run `recipe.finish` on what `plan` gave (`tasks`): with its `context` if `finish`
    takes one; an outside recipe whose `finish` predates it is called as before."""
    context = tasks.context if isinstance(tasks, Plan) else None
    if takes_context(recipe):
        recipe.finish(params, inputs, results, out, context=context)
    else:
        recipe.finish(params, inputs, results, out)  # type: ignore[call-arg]


def takes_context(recipe: type[Recipe]) -> bool:
    """Whether `recipe.finish` accepts `context` (by name, or as **kwargs)."""
    parameters = inspect.signature(recipe.finish).parameters.values()
    return any((p.name == "context" and p.kind is not p.POSITIONAL_ONLY) or
               p.kind is p.VAR_KEYWORD for p in parameters)


class Recipe(ABC):
    name: ClassVar[str]
    version: ClassVar[int]
    Params: ClassVar[type[Params]]
    inputs: ClassVar[Mapping[str, InputSpec]]

    @classmethod
    @abstractmethod
    def plan(cls, params: Any, inputs: Inputs) -> list[Any]:
        """Split the work into picklable tasks; check the inputs here, before any output.
        Return a `Plan(tasks, context)` to hand `finish` what it needs of the planning."""

    @classmethod
    @abstractmethod
    def run(cls, params: Any, task: Any, out: Output) -> Any:
        """Do one task, writing files through `out`; return a small picklable result."""

    @classmethod
    def follow(cls, params: Any, tasks: list[Any],
               out: Output) -> Callable[[int, Any], None] | None:
        """Optional: runs on the coordinator before the first task (e.g. to `reserve` a
        file tasks write into); returns a callable the coordinator feeds each task's result
        as it arrives, with the task's files already in `out.root` (e.g. to hash a shared
        file while later tasks still write). Not called when tasks write elsewhere (a
        remote store)."""
        return None

    @classmethod
    def finish(cls, params: Any, inputs: Inputs, results: list[Any], out: Output,
               context: Any = None) -> None:
        """Write the artifact's indexes from the tasks' results (in plan order); optional.
        `context`: the `Plan`'s context (None when `plan` returned a bare list). A `finish`
        without the `context` argument (an older outside recipe) is still called, without."""
        return None


def recipe_problems(recipe: Any) -> list[str]:
    """What `recipe` lacks of what the registry needs of a recipe (empty: nothing), checked
    when it is registered or first looked up (plugins.py), so that a plugin's incomplete
    recipe is a PluginError naming it rather than a traceback mid-build."""
    if not isinstance(recipe, type):
        return [f"it is a {type(recipe).__name__}, not a class (subclass "
                "dataset_registry.recipes.Recipe)"]
    needs: list[tuple[str, Callable[[Any], bool], str]] = [
        ("name", lambda v: isinstance(v, str) and bool(v), "a non-empty str"),
        ("version", lambda v: isinstance(v, int) and not isinstance(v, bool),
         "an int, raised whenever what the recipe writes changes"),
        ("Params", lambda v: isinstance(v, type) and issubclass(v, BaseModel),
         "a dataset_registry.recipes.Params subclass"),
        ("inputs", lambda v: isinstance(v, Mapping) and all(
            isinstance(s, InputSpec) for s in v.values()), "a mapping of role to InputSpec"),
    ]
    problems = []
    for attr, fits, what in needs:
        if not hasattr(recipe, attr):
            problems.append(f"no `{attr}` ({what})")
        elif not fits(getattr(recipe, attr)):
            problems.append(f"`{attr}` is {getattr(recipe, attr)!r}, not {what}")
    abstract = getattr(recipe, "__abstractmethods__", frozenset())
    for method in ("plan", "run"):
        if not callable(getattr(recipe, method, None)) or method in abstract:
            problems.append(f"no `{method}` classmethod")
    return problems
