"""Loading manifests: every `*.yaml` under a folder, parsed, with variants and matrices
expanded into named datasets and path inputs into shipped files.

Everything here is checked without a recipe (names, layouts and their options, paths,
placeholders filled by the axes, cards); a dataset's params are checked against its recipe
on first use (binding.py), so loading imports no recipe.
"""

from __future__ import annotations

import itertools
import math
import os
from typing import Any

from pydantic import ValidationError

from .. import plugins
from ..config import PACKAGE_DATA, input_problem, locate, outside, read_text, readable_roots
from ..errors import ManifestError, did_you_mean
from ..yamlio import LineMap, dotted, load_yaml
from .graph import check_graph
from .nodes import DatasetNode, FileNode, JobNode, Manifests, Node, ParamsOrigin, SourceNode
from .schema import (
    CARD_FIELDS,
    MAX_VARIANTS,
    NAME_CHARS,
    PLACEHOLDER,
    Card,
    DatasetSpec,
    ManifestDoc,
    Scalar,
    SourceSpec,
    VariantSpec,
    manifest_error,
)


def load_manifests(root: str) -> Manifests:
    """Load and check every manifest under `root` (sorted, recursive). Each dataset's params
    are checked against its recipe on first use, or by `Manifests.check_recipes()`."""
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
    check_graph(manifests)
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
    if not isinstance(data, dict):  # (pydantic would name its model, at an empty path)
        kind = {list: "a list", str: "text", bool: "true or false", int: "a number",
                float: "a number"}.get(type(data), type(data).__name__)
        raise ManifestError(f"{lines.where(())}: a manifest is a mapping of `sources:`, "
                            f"`datasets:`, `files:` and `jobs:` lists, not {kind}")
    # `x-*` keys hold YAML anchors only, as in compose files
    data = {k: v for k, v in data.items() if not str(k).startswith("x-")}
    try:
        doc = ManifestDoc.model_validate(data)
    except ValidationError as exc:
        raise manifest_error(exc, lines, ()) from None
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
    try:
        layout = plugins.get("layouts", spec.layout)
    except plugins.PluginError as exc:
        raise ManifestError(f"{lines.where((*at, 'layout'))}: {dotted(at)}.layout: "
                            f"{exc}") from None
    try:
        layout.parse_options(spec.options)
    except ValidationError as exc:
        raise manifest_error(exc, lines, (*at, "options")) from None


def _expand(spec: DatasetSpec, at: tuple[Any, ...], lines: LineMap, base_dir: str,
            roots: tuple[str, ...], shipped: dict[str, FileNode]) -> list[DatasetNode]:
    where = lines.where(at)
    known = plugins.names("recipes")  # names only: the recipe is imported on first use
    if spec.recipe not in known:
        raise ManifestError(f"{lines.where((*at, 'recipe'))}: {dotted(at)}.recipe: unknown recipe "
                            f"{spec.recipe!r} (known: {', '.join(known)})"
                            f"{did_you_mean(spec.recipe, known)}"
                            f"{plugins.missing_note()}")
    if spec.variants is not None and spec.matrix is not None:
        raise ManifestError(f"{where}: {dotted(at)}: use either variants or matrix, not both")
    holes = PLACEHOLDER.findall(spec.name)
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
        if not isinstance(name, str) or not NAME_CHARS.fullmatch(name):
            raise ManifestError(f"{lines.where((*at, 'name'))}: {dotted(at)}.name: {name!r} is not "
                                f"a valid name (letters, digits, '.', '_', '+', '-')")
        raw_params = {k: _fill(v, axes) for k, v in {**spec.params, **variant.params}.items()}
        inputs = {k: str(_fill(v, axes)) for k, v in {**spec.inputs, **variant.inputs}.items()}
        origin = ParamsOrigin(lines, at, vat, frozenset(variant.params), tuple(axes))
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
            recipe=spec.recipe, raw_params=raw_params, origin=origin, inputs=inputs,
            card=_card(spec, variant, at, vat, lines)))
    return nodes


def _card(spec: Card, variant: VariantSpec | None, at: tuple[Any, ...],
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
    whole = PLACEHOLDER.fullmatch(value)
    if whole and whole.group(1) in axes:
        return axes[whole.group(1)]  # "{size}" takes the axis value with its type
    return PLACEHOLDER.sub(lambda m: str(axes.get(m.group(1), m.group(0))), value)
