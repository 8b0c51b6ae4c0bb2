"""Binding a dataset to its recipe: its params validated by the recipe's Params class, its
inputs against the roles the recipe takes.

This is the one place the manifest layer meets a recipe, and it runs on first use of a
dataset's params (or for every dataset at once: `Manifests.check_recipes`), never while
parsing: a recipe module brings numpy, Pillow and its formats, and loading manifests
(`registry job list`, an editor's check, the key cache's fast path) needs none of them.
Every message is the one a check at load would give: the file:line of the param as written
(the variant's, where a variant sets it), the field and the dataset's name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from .. import plugins
from ..errors import ManifestError
from ..yamlio import dotted
from .schema import PLACEHOLDER, manifest_error

if TYPE_CHECKING:
    from .nodes import DatasetNode


def bind(node: DatasetNode) -> Any:
    """`node`'s params as its recipe's validated Params model (ManifestError if they, or its
    inputs, do not fit the recipe)."""
    recipe = plugins.get("recipes", node.recipe)  # known: the loader checked the name
    origin = node.origin
    assert origin is not None, f"{node.name}: a DatasetNode made outside the loader"
    fields = recipe.Params.model_fields
    fills = getattr(recipe.Params, "own_placeholders", {})
    for key, value in node.raw_params.items():
        hole = unfilled(value, fields.get(key), fills.get(key, ()))
        if hole:
            at = origin.of((key,))
            raise ManifestError(f"{origin.lines.where(at)}: {dotted(at)} ({node.name}): "
                                f"placeholder {{{hole}}} is not filled: no variant or matrix "
                                f"axis {hole!r} (axes: {', '.join(origin.axes) or 'none'})")
    try:
        # the context lets a param default to the dataset's name (webdataset's prefix),
        # filled here so that the name it writes is in the key, and check itself by the
        # inputs given (downscale's classes: WNIDs only with ImageNet's labels)
        params = recipe.Params.model_validate(
            node.raw_params, context={"dataset": node.name, "inputs": sorted(node.inputs)})
    except ValidationError as exc:
        raise manifest_error(exc, origin.lines, None, origin=origin.of,
                             label=node.name) from None
    _check_inputs(node, recipe)
    return params


def _check_inputs(node: DatasetNode, recipe: Any) -> None:
    """The inputs name the roles the recipe takes, each the kind of node it needs (the
    targets' existence and cycles are checked at load: they need no recipe)."""
    for role, spec in recipe.inputs.items():
        if spec.required and role not in node.inputs:
            raise ManifestError(f"{node.where}: {node.name}: inputs.{role}: missing; recipe "
                                f"{node.recipe!r} needs {spec.kind} here ({spec.doc})")
    for role, target in node.inputs.items():
        where = f"{node.where}: {node.name}: inputs.{role}"
        if role not in recipe.inputs:
            raise ManifestError(f"{where}: recipe {node.recipe!r} has no input {role!r} "
                                f"(it takes: {', '.join(recipe.inputs)})")
        kind = recipe.inputs[role].kind
        got = node.input_kinds[role]
        if (got == "file") != (kind == "file"):
            raise ManifestError(f"{where}: {target!r} is a {got}, but recipe "
                                f"{node.recipe!r} needs {kind} here")


def unfilled(value: Any, field: Any, fills: Any = ()) -> str | None:
    """A {placeholder} left in a param after expansion, except one the recipe fills itself
    (in the field's default, or in its Params' `own_placeholders`, as webdataset's
    `prefix: imagenet-{split}`)."""
    default = getattr(field, "default", None)
    own = set(PLACEHOLDER.findall(default)) if isinstance(default, str) else set()
    own |= set(fills)
    for text in value if isinstance(value, list) else [value]:
        if isinstance(text, str):
            for hole in PLACEHOLDER.findall(text):
                if hole not in own:
                    return hole
    return None
