"""A small validator for a CustomResourceDefinition's openAPIV3Schema (structural schemas).

What the API server checks on create, short of CEL: types, required fields, unknown fields
(a structural schema prunes them silently, which is how a typo goes unnoticed), enums,
int-or-string quantities, patterns, lengths, item counts and numeric bounds. The
`x-kubernetes-validations` CEL rules are not evaluated. Problems read "path: what is wrong",
like check.py's.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from typing import Any

_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool}


@cache
def load_schema(name: str) -> dict[str, Any]:
    """A schema shipped in dataset_registry/jobs/schemas (see its SOURCES.md)."""
    text = resources.files("dataset_registry").joinpath("jobs", "schemas", name).read_text("utf-8")
    return json.loads(text)


def validate(value: Any, schema: dict[str, Any], at: str, *,
             skip: tuple[str, ...] = ()) -> list[str]:
    """Problems of `value` against `schema` (empty: it validates); `skip` names top-level
    fields checked elsewhere (metadata, by the Kubernetes models)."""
    problems: list[str] = []
    _check(value, schema, at, problems, skip)
    return problems


def _type_ok(value: Any, schema: dict[str, Any]) -> bool:
    if schema.get("x-kubernetes-int-or-string"):
        return isinstance(value, (int, str)) and not isinstance(value, bool)
    kind = schema.get("type")
    if kind is None:
        return True
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, _TYPES[kind])


def _check(value: Any, schema: dict[str, Any], at: str, problems: list[str],
           skip: tuple[str, ...] = ()) -> None:
    if not _type_ok(value, schema):
        want = "int or string" if schema.get("x-kubernetes-int-or-string") else schema["type"]
        problems.append(f"{at}: expected {want}, got {type(value).__name__} {value!r}")
        return
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{at}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, str):
        _string(value, schema, at, problems)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{at}: {value} is below the minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(f"{at}: {value} is above the maximum {schema['maximum']}")
    elif isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            problems.append(f"{at}: {len(value)} items, at most {schema['maxItems']}")
        for i, item in enumerate(value):
            _check(item, schema.get("items", {}), f"{at}[{i}]", problems)
    elif isinstance(value, dict):
        _object(value, schema, at, problems, skip)


def _string(value: str, schema: dict[str, Any], at: str, problems: list[str]) -> None:
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        problems.append(f"{at}: longer than {schema['maxLength']} characters")
    if "minLength" in schema and len(value) < schema["minLength"]:
        problems.append(f"{at}: shorter than {schema['minLength']} characters")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        problems.append(f"{at}: {value!r} does not match {schema['pattern']}")


def _object(value: dict[str, Any], schema: dict[str, Any], at: str, problems: list[str],
            skip: tuple[str, ...]) -> None:
    for name in schema.get("required", ()):
        if name not in value:
            problems.append(f"{at}.{name}: missing (required)")
    properties = schema.get("properties")
    extra = schema.get("additionalProperties")
    for key, item in value.items():
        where = f"{at}.{key}" if at else str(key)
        if key in skip:
            continue
        if properties is not None and key in properties:
            _check(item, properties[key], where, problems)
        elif isinstance(extra, dict):
            _check(item, extra, where, problems)
        elif properties is not None or extra is False:
            problems.append(f"{where}: unknown field")
