"""The loaded graph: named sources, files, datasets and training jobs, each knowing where it
was defined (file:line) for messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import ManifestError, did_you_mean
from ..yamlio import LineMap
from .schema import Expect, JobSpec


@dataclass
class Node:
    name: str
    file: str
    line: int
    description: str = ""
    tags: tuple[str, ...] = ()
    card: dict[str, Any] = field(default_factory=dict)  # its set card fields (see Card)

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass
class SourceNode(Node):
    layout: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    expect: Expect = field(default_factory=Expect)
    kind: str = "source"


@dataclass
class FileNode(Node):
    path: str = ""  # absolute path of the shipped file or folder
    kind: str = "file"


@dataclass(frozen=True)
class ParamsOrigin:
    """Where a dataset's params were written, so that checking them against the recipe,
    later, names the same file:line and field as checking them at load would."""

    lines: LineMap
    at: tuple[Any, ...]  # the dataset entry: ("datasets", i)
    variant_at: tuple[Any, ...] | None = None  # its variant: (*at, "variants", key)
    variant_params: frozenset[str] = frozenset()  # the params the variant sets
    axes: tuple[str, ...] = ()  # the variant or matrix axes that filled placeholders

    def of(self, loc: tuple[Any, ...]) -> tuple[Any, ...]:
        """The document path of params field `loc` (the variant's, where it sets it)."""
        if self.variant_at is not None and loc and loc[0] in self.variant_params:
            return (*self.variant_at, "params", *loc)
        return (*self.at, "params", *loc)


@dataclass
class DatasetNode(Node):
    """A dataset. Its params are checked against its recipe on first use (`params`), not at
    load: parsing manifests imports no recipe (see manifest/binding.py)."""

    recipe: str = ""
    inputs: dict[str, str] = field(default_factory=dict)  # role -> node name
    kind: str = "dataset"
    raw_params: dict[str, Any] = field(default_factory=dict)  # as written, axes filled in
    origin: ParamsOrigin | None = field(default=None, repr=False, compare=False)
    input_kinds: dict[str, str] = field(default_factory=dict)  # role -> its target's kind
    _params: Any = field(default=None, init=False, repr=False, compare=False)

    @property
    def params(self) -> Any:
        """The recipe's validated Params model; ManifestError (file:line, field) if the
        params or inputs do not fit the recipe."""
        if self._params is None:
            from .binding import bind

            self._params = bind(self)
        return self._params


@dataclass
class JobNode(Node):
    spec: JobSpec | None = None
    templates: dict[str, str] = field(default_factory=dict)  # flavor -> absolute path
    kind: str = "job"


@dataclass
class Manifests:
    root: str
    nodes: dict[str, Node]
    jobs: dict[str, JobNode] = field(default_factory=dict)

    def job(self, name: str) -> JobNode:
        try:
            return self.jobs[name]
        except KeyError:
            known = ", ".join(sorted(self.jobs)) or "none"
            raise ManifestError(f"no training job named {name!r} in {self.root} "
                                f"(known: {known}){did_you_mean(name, self.jobs)}") from None

    def get(self, name: str) -> Node:
        try:
            return self.nodes[name]
        except KeyError:
            raise ManifestError(f"no dataset, source or file named {name!r} in "
                                f"{self.root}{did_you_mean(name, self.nodes)}") from None

    def datasets(self) -> list[DatasetNode]:
        return [n for n in self.nodes.values() if isinstance(n, DatasetNode)]

    def by_tags(self, tags: list[str]) -> list[Node]:
        return [n for n in self.nodes.values() if set(tags) <= set(n.tags)]

    def check_recipes(self) -> Manifests:
        """Check every dataset's params and inputs against its recipe now (importing the
        recipes), in manifest order: the first misfit is a ManifestError naming its file,
        line and field. What a command that builds or keys runs before it acts."""
        for node in self.datasets():
            node.params  # noqa: B018 - binding is the check
        return self
