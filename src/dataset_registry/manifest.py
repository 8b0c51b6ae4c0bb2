"""Manifests: the YAML models, variant and matrix expansion, and graph checks.

A manifest file holds `sources` (raw data the user points at), `files`
(shipped inputs such as label lists), `datasets` (derivations) and `jobs`
(training jobs that read datasets, with job spec templates). Loading every
`*.yaml` under a folder yields a `Manifests` graph of named nodes, or a
ManifestError naming the file, the line and the field. Job spec templates end
in `.tmpl`, so the loader never reads them as manifests.
"""

from __future__ import annotations

import itertools
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ManifestError
from .paths import PACKAGE_DATA, input_problem, locate, outside, read_text, readable_roots
from .recipes import RECIPES
from .yamlio import LineMap, dotted, load_yaml

Scalar = str | int | float | bool

_NAME = r"^[A-Za-z0-9][A-Za-z0-9._+-]*$"  # pydantic's `$` is the end of text; re's is not
_NAME_CHARS = re.compile(_NAME[1:-1])  # for re.fullmatch, which refuses "a\n" as well
_K8S_NAME = r"^[a-z0-9]([a-z0-9-]{0,50}[a-z0-9])?$"  # fits a Kubernetes object name
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
MAX_VARIANTS = 10_000  # datasets one entry may expand to: a matrix multiplies its axes


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Expect(_Model):
    files: int | None = Field(default=None, gt=0)
    md5: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$")


class _Card(_Model):
    """A dataset card: where data comes from and on what terms. Shown and recorded (marker,
    catalog), never keyed: a license added later leaves every key as it was."""

    license: str = ""
    citation: str = ""
    homepage: str = ""
    meta: dict[str, Any] = {}  # free: anything JSON can hold (quote a date: "2012-10-01")


CARD_FIELDS = tuple(_Card.model_fields)


class SourceSpec(_Card):
    name: str = Field(pattern=_NAME)
    layout: str  # a registered layout (plugins.py); checked with its options at load
    options: dict[str, Any] = {}
    description: str = ""
    expect: Expect = Expect()
    tags: list[str] = []


class FileSpec(_Model):
    name: str = Field(pattern=_NAME)
    path: str
    description: str = ""
    tags: list[str] = []


class VariantSpec(_Model):
    params: dict[str, Any] = {}
    inputs: dict[str, str] = {}
    tags: list[str] = []
    description: str | None = None
    license: str | None = None  # the card, per variant: set replaces, meta merges
    citation: str | None = None
    homepage: str | None = None
    meta: dict[str, Any] = {}


class DatasetSpec(_Card):
    name: str
    recipe: str
    inputs: dict[str, str] = {}
    params: dict[str, Any] = {}
    variants: dict[str, VariantSpec | None] | None = None
    matrix: dict[str, list[Scalar]] | None = None
    tags: list[str] = []
    description: str = ""


class VolumeSpec(_Model):
    claim: str = Field(pattern=_K8S_NAME)  # the PersistentVolumeClaim holding data and store
    mount: str = Field(default="/pvc", pattern=r"^/")
    store: str  # the registry store as the cluster sees it: a path under `mount`, or s3://


class TargetSpec(_Model):
    metric: str
    value: float


class JobSpec(_Model):
    name: str = Field(pattern=_K8S_NAME)
    description: str = ""
    datasets: dict[str, str] = Field(min_length=1)  # role -> dataset name
    templates: dict[str, str] = Field(min_length=1)  # flavor -> template (*.tmpl), relative
    image: str
    workers: int = Field(default=1, gt=0, le=10_000)  # bounds: past them, only a typo
    gpus_per_worker: int = Field(default=1, ge=0, le=64)
    cpu: int = Field(default=8, gt=0, le=4096)
    memory: str = Field(default="32Gi", pattern=r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$")
    volume: VolumeSpec
    sources: dict[str, str] = {}  # source name -> its location on the volume (build step)
    registry_image: str | None = None  # an image with dataset-registry and these manifests
    target: TargetSpec | None = None
    values: dict[str, Scalar] = {}  # free values for the templates: ${values.NAME}
    tags: list[str] = []


class ManifestDoc(_Model):
    sources: list[SourceSpec] = []
    files: list[FileSpec] = []
    datasets: list[DatasetSpec] = []
    jobs: list[JobSpec] = []


@dataclass
class Node:
    name: str
    file: str
    line: int
    description: str = ""
    tags: tuple[str, ...] = ()
    card: dict[str, Any] = field(default_factory=dict)  # its set card fields (see _Card)

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


@dataclass
class DatasetNode(Node):
    recipe: str = ""
    params: Any = None  # the recipe's validated Params model
    inputs: dict[str, str] = field(default_factory=dict)  # role -> node name
    kind: str = "dataset"


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
                                f"(known: {known})") from None

    def get(self, name: str) -> Node:
        try:
            return self.nodes[name]
        except KeyError:
            close = [n for n in self.nodes if name in n or n in name][:5]
            hint = f" (did you mean: {', '.join(sorted(close))}?)" if close else ""
            raise ManifestError(f"no dataset, source or file named {name!r} in "
                                f"{self.root}{hint}") from None

    def datasets(self) -> list[DatasetNode]:
        return [n for n in self.nodes.values() if isinstance(n, DatasetNode)]

    def by_tags(self, tags: list[str]) -> list[Node]:
        return [n for n in self.nodes.values() if set(tags) <= set(n.tags)]


def load_manifests(root: str) -> Manifests:
    """Load and check every manifest under `root` (sorted, recursive)."""
    if not os.path.isdir(root):
        raise ManifestError(f"{root}: no manifests folder")
    nodes: dict[str, Node] = {}
    jobs: dict[str, JobNode] = {}
    roots = readable_roots(root)
    for path in _manifest_files(root):
        rel = os.path.relpath(path, os.path.dirname(os.path.abspath(root)))
        text = read_text(path, rel, roots)
        for node in _load_file(text, rel, os.path.dirname(path), roots):
            table: dict[str, Any] = jobs if isinstance(node, JobNode) else nodes
            if node.name in table:
                raise ManifestError(f"{node.where}: duplicate name {node.name!r} "
                                    f"(first defined at {table[node.name].where})")
            table[node.name] = node
    manifests = Manifests(root=root, nodes=nodes, jobs=jobs)
    _check_graph(manifests)
    return manifests


def _manifest_files(root: str) -> list[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        found += [os.path.join(dirpath, f) for f in sorted(filenames)
                  if f.endswith((".yaml", ".yml"))]
    return found


def _load_file(text: str, rel: str, base_dir: str, roots: tuple[str, ...]) -> list[Node]:
    data, lines = load_yaml(text, rel)
    if data is None:
        return []
    if isinstance(data, dict):  # `x-*` keys hold YAML anchors only, as in compose files
        data = {k: v for k, v in data.items() if not str(k).startswith("x-")}
    try:
        doc = ManifestDoc.model_validate(data)
    except ValidationError as exc:
        raise _manifest_error(exc, lines, ()) from None
    out: list[Node] = []
    for i, s in enumerate(doc.sources):
        _check_layout(s, ("sources", i), lines)
        out.append(SourceNode(name=s.name, file=rel, line=lines.line(("sources", i)) or 0,
                              description=s.description, tags=tuple(s.tags), layout=s.layout,
                              options=dict(s.options), expect=s.expect,
                              card=_card(s, None, ("sources", i), None, lines)))
    for i, f in enumerate(doc.files):
        try:
            path, extra = locate(f.path, base_dir)
        except ValueError as exc:
            raise ManifestError(f"{lines.where(('files', i, 'path'))}: files[{i}].path: "
                                f"{exc}") from None
        problem = input_problem(path, roots + extra)
        if problem:
            raise ManifestError(f"{lines.where(('files', i, 'path'))}: files[{i}].path: "
                                f"{f.path!r} {problem} (looked for {path})")
        out.append(FileNode(name=f.name, file=rel, line=lines.line(("files", i)) or 0,
                            description=f.description, tags=tuple(f.tags), path=path))
    shipped: dict[str, FileNode] = {}
    for i, d in enumerate(doc.datasets):
        out += _expand(d, ("datasets", i), lines, base_dir, roots, shipped)
    for i, j in enumerate(doc.jobs):
        templates = {}
        for flavor, tmpl in j.templates.items():
            at = ("jobs", i, "templates", flavor)
            path = os.path.normpath(os.path.join(base_dir, tmpl))
            if not tmpl.endswith(".tmpl"):
                raise ManifestError(f"{lines.where(at)}: {dotted(at)}: {tmpl!r}: a job spec "
                                    "template's name must end in .tmpl")
            if not os.path.isfile(path) or outside(path, roots):
                raise ManifestError(f"{lines.where(at)}: {dotted(at)}: template {tmpl!r} "
                                    + ("resolves outside the project" if os.path.isfile(path)
                                       else "does not exist") + f" (looked for {path})")
            templates[flavor] = path
        out.append(JobNode(name=j.name, file=rel, line=lines.line(("jobs", i)) or 0,
                           description=j.description, tags=tuple(j.tags), spec=j,
                           templates=templates))
    return out + list(shipped.values())


def _check_layout(spec: SourceSpec, at: tuple[Any, ...], lines: LineMap) -> None:
    """The layout is registered and takes these options (a file:line error otherwise)."""
    from . import plugins

    try:
        layout = plugins.get("layouts", spec.layout)
    except plugins.PluginError as exc:
        raise ManifestError(f"{lines.where((*at, 'layout'))}: {dotted(at)}.layout: "
                            f"{exc}") from None
    try:
        layout.parse_options(spec.options)
    except ValidationError as exc:
        raise _manifest_error(exc, lines, (*at, "options")) from None


def _expand(spec: DatasetSpec, at: tuple[Any, ...], lines: LineMap, base_dir: str,
            roots: tuple[str, ...], shipped: dict[str, FileNode]) -> list[DatasetNode]:
    where = lines.where(at)
    recipe = RECIPES.get(spec.recipe)
    if recipe is None:
        raise ManifestError(f"{lines.where((*at, 'recipe'))}: {dotted(at)}.recipe: unknown recipe "
                            f"{spec.recipe!r} (known: {', '.join(sorted(RECIPES))})")
    if spec.variants is not None and spec.matrix is not None:
        raise ManifestError(f"{where}: {dotted(at)}: use either variants or matrix, not both")
    holes = _PLACEHOLDER.findall(spec.name)
    combos: list[tuple[dict[str, Scalar], VariantSpec, tuple[Any, ...] | None]]
    if spec.variants is not None:
        if len(holes) != 1:
            raise ManifestError(f"{lines.where((*at, 'name'))}: {dotted(at)}.name: a dataset with "
                                f"variants needs exactly one {{placeholder}} in its name")
        combos = [({holes[0]: k}, v or VariantSpec(), (*at, "variants", k))
                  for k, v in spec.variants.items()]
    elif spec.matrix is not None:
        if set(holes) != set(spec.matrix):
            raise ManifestError(f"{lines.where((*at, 'name'))}: {dotted(at)}.name: placeholders "
                                f"{sorted(holes)} must match the matrix axes {sorted(spec.matrix)}")
        axes = list(spec.matrix)
        if math.prod(len(v) for v in spec.matrix.values()) > MAX_VARIANTS:
            raise ManifestError(f"{lines.where((*at, 'matrix'))}: {dotted(at)}.matrix: more "
                                f"than {MAX_VARIANTS:,} combinations; split the dataset")
        combos = [(dict(zip(axes, values, strict=True)), VariantSpec(), None)
                  for values in itertools.product(*(spec.matrix[a] for a in axes))]
    else:
        if holes:
            raise ManifestError(f"{lines.where((*at, 'name'))}: {dotted(at)}.name: placeholder "
                                f"{{{holes[0]}}} but no variants or matrix to fill it")
        combos = [({}, VariantSpec(), None)]

    nodes = []
    for axes, variant, vat in combos:
        name = _fill(spec.name, axes)
        if not isinstance(name, str) or not _NAME_CHARS.fullmatch(name):
            raise ManifestError(f"{lines.where((*at, 'name'))}: {dotted(at)}.name: {name!r} is not "
                                f"a valid name (letters, digits, '.', '_', '+', '-')")
        raw_params = {k: _fill(v, axes) for k, v in {**spec.params, **variant.params}.items()}
        inputs = {k: str(_fill(v, axes)) for k, v in {**spec.inputs, **variant.inputs}.items()}

        def origin(loc: tuple[Any, ...], vat: Any = vat, variant: VariantSpec = variant):
            if vat is not None and loc and loc[0] in variant.params:
                return (*vat, "params", *loc)
            return (*at, "params", *loc)
        for key, value in raw_params.items():
            hole = _unfilled(value, recipe.Params.model_fields.get(key),
                             getattr(recipe.Params, "own_placeholders", {}).get(key, ()))
            if hole:
                pat = origin((key,))
                raise ManifestError(f"{lines.where(pat)}: {dotted(pat)} ({name}): placeholder "
                                    f"{{{hole}}} is not filled: no variant or matrix axis "
                                    f"{hole!r} (axes: {', '.join(axes) or 'none'})")
        try:
            # the context lets a param default to the dataset's name (webdataset's prefix),
            # filled here so that the name it writes is in the key, and check itself by the
            # inputs given (downscale's classes: WNIDs only with ImageNet's labels)
            params = recipe.Params.model_validate(
                raw_params, context={"dataset": name, "inputs": sorted(inputs)})
        except ValidationError as exc:
            raise _manifest_error(exc, lines, None, origin=origin, label=name) from None
        for role, value in list(inputs.items()):
            if _looks_like_path(value):
                iat = (*vat, "inputs", role) if vat and role in variant.inputs else \
                    (*at, "inputs", role)
                try:
                    path, extra = locate(value, base_dir)
                except ValueError as exc:
                    raise ManifestError(f"{lines.where(iat)}: {dotted(iat)}: {exc}") from None
                problem = input_problem(path, roots + extra)
                if problem is None:
                    rel = os.path.relpath(path, os.path.dirname(base_dir))
                    file_name = value if extra else rel.replace(os.sep, "/")
                    shipped.setdefault(file_name, FileNode(
                        name=file_name, file=lines.file, line=lines.line(at) or 0, path=path))
                    inputs[role] = file_name
                else:
                    raise ManifestError(f"{lines.where(iat)}: {dotted(iat)}: file {value!r} "
                                        f"{problem} (looked for {path})")
        line_at = vat if vat is not None else at
        nodes.append(DatasetNode(
            name=name, file=lines.file, line=lines.line(line_at) or 0,
            description=variant.description or spec.description,
            tags=tuple(dict.fromkeys([*spec.tags, *variant.tags])),
            recipe=spec.recipe, params=params, inputs=inputs,
            card=_card(spec, variant, at, vat, lines)))
    return nodes


def _card(spec: _Card, variant: VariantSpec | None, at: tuple[Any, ...],
          vat: tuple[Any, ...] | None, lines: LineMap) -> dict[str, Any]:
    """The card fields set on an entry, a variant's over its dataset's; `meta` must be
    JSON (YAML reads an unquoted 2012-10-01 as a date, which a marker cannot hold)."""
    card: dict[str, Any] = {}
    for name in CARD_FIELDS:
        own = getattr(variant, name, None) if variant is not None else None
        value = {**spec.meta, **(own or {})} if name == "meta" else \
            (own if own is not None else getattr(spec, name))
        if value:
            card[name] = value
    for key, value in card.get("meta", {}).items():
        where = (*vat, "meta", key) if vat is not None and key in variant.meta else \
            (*at, "meta", key)
        problem = _not_json(value)
        if problem:
            raise ManifestError(f"{lines.where(where)}: {dotted(where)}: {problem}")
    return card


def _not_json(value: Any) -> str | None:
    if value is None or isinstance(value, str | bool | int):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{value} is not a JSON number"
    if isinstance(value, list):
        return next(filter(None, map(_not_json, value)), None)
    if isinstance(value, dict):
        return next(filter(None, map(_not_json, value.values())), None)
    hint = f"; quote it: '{value}'" if hasattr(value, "isoformat") else ""
    return f"a {type(value).__name__} is not JSON{hint}"


def _looks_like_path(value: str) -> bool:
    return value.startswith(PACKAGE_DATA) or "/" in value or \
        value.endswith((".txt", ".csv", ".json", ".lst"))


def _fill(value: Any, axes: dict[str, Scalar]) -> Any:
    if not isinstance(value, str) or not axes:
        return value
    whole = _PLACEHOLDER.fullmatch(value)
    if whole and whole.group(1) in axes:
        return axes[whole.group(1)]  # "{size}" takes the axis value with its type
    return _PLACEHOLDER.sub(lambda m: str(axes.get(m.group(1), m.group(0))), value)


def _unfilled(value: Any, field: Any, fills: Any = ()) -> str | None:
    """A {placeholder} left in a param after expansion, except one the recipe fills itself
    (in the field's default, or in its Params' `own_placeholders`, as webdataset's
    `prefix: imagenet-{split}`)."""
    default = getattr(field, "default", None)
    own = set(_PLACEHOLDER.findall(default)) if isinstance(default, str) else set()
    own |= set(fills)
    for text in value if isinstance(value, list) else [value]:
        if isinstance(text, str):
            for hole in _PLACEHOLDER.findall(text):
                if hole not in own:
                    return hole
    return None


def _check_graph(manifests: Manifests) -> None:
    nodes = manifests.nodes
    for node in manifests.datasets():
        recipe = RECIPES[node.recipe]
        for role, spec in recipe.inputs.items():
            if spec.required and role not in node.inputs:
                raise ManifestError(f"{node.where}: {node.name}: inputs.{role}: missing; recipe "
                                    f"{node.recipe!r} needs {spec.kind} here ({spec.doc})")
        for role, target in node.inputs.items():
            where = f"{node.where}: {node.name}: inputs.{role}"
            if role not in recipe.inputs:
                raise ManifestError(f"{where}: recipe {node.recipe!r} has no input {role!r} "
                                    f"(it takes: {', '.join(recipe.inputs)})")
            if target not in nodes:
                raise ManifestError(f"{where}: no dataset, source or file named {target!r}")
            kind = recipe.inputs[role].kind
            got = nodes[target]
            ok = isinstance(got, FileNode) if kind == "file" else \
                isinstance(got, (SourceNode, DatasetNode))
            if not ok:
                raise ManifestError(f"{where}: {target!r} is a {got.kind}, but recipe "
                                    f"{node.recipe!r} needs {kind} here")
    _check_cycles(manifests)
    for job in manifests.jobs.values():
        assert job.spec is not None
        for role, target in job.spec.datasets.items():
            if not isinstance(nodes.get(target), DatasetNode):
                what = f"is a {nodes[target].kind}" if target in nodes else "is not defined"
                raise ManifestError(f"{job.where}: job {job.name}: datasets.{role}: {target!r} "
                                    f"{what}; a training job reads datasets")


def _check_cycles(manifests: Manifests) -> None:
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = [*trail[trail.index(name):], name]
            node = manifests.nodes[name]
            raise ManifestError(f"{node.where}: dependency cycle: {' -> '.join(cycle)}")
        state[name] = 1
        node = manifests.nodes[name]
        if isinstance(node, DatasetNode):
            for target in node.inputs.values():
                visit(target, [*trail, name])
        state[name] = 2

    for name in manifests.nodes:
        visit(name, [])


def _manifest_error(exc: ValidationError, lines: LineMap, prefix: tuple[Any, ...] | None, *,
                    origin: Any = None, label: str | None = None) -> ManifestError:
    messages = []
    for err in exc.errors()[:5]:
        loc = tuple(err["loc"])
        path = origin(loc) if origin else (*(prefix or ()), *loc)
        what = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        who = f" ({label})" if label else ""
        messages.append(f"{lines.where(path)}: {dotted(path)}{who}: {what}")
    return ManifestError("\n".join(messages))
