"""dataset-registry: YAML manifests in, reproducible content-hashed dataset variants out.

    >>> from dataset_registry import Registry
    >>> reg = Registry.open(".")
    >>> ds = reg.resolve("imagenet-calibration-mlperf.option1")
    >>> ds.key, ds.uri, ds.path

The public names below are imported on first use (PEP 562), so the `registry`
command can answer a resolve of a built dataset without loading pydantic.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from . import _moved

__version__ = "0.1.0"
_moved.install()  # the old import paths of modules that moved (see _moved.py)

_EXPORTS = {
    "Registry": "api", "QueryResult": "api", "Resolved": "engine.build",
    "RenderedJob": "jobs.spec",
    "Marker": "artifact.marker",  # Resolved.marker: what _registry.json says of an artifact
    **{name: "errors" for name in (
        "RegistryError", "BadInputError", "ManifestError", "SourceError", "UnsafeMemberError",
        "SourceChangedError", "BadImageError", "QueryRefusedError", "TemplateError",
        "BuildError", "RecipeError", "SubmitError",
        "CatalogBusyError", "CatalogCorruptError", "QueryTimeoutError", "VerifyError",
        "StorageError", "PluginError")},
}

__all__ = sorted([*_EXPORTS, "__version__"])

if TYPE_CHECKING:  # for type checkers and IDEs; at run time __getattr__ imports
    from .api import QueryResult, Registry  # noqa: F401
    from .artifact.marker import Marker  # noqa: F401
    from .engine.build import Resolved  # noqa: F401
    from .errors import (  # noqa: F401
        BadImageError,
        BadInputError,
        BuildError,
        CatalogBusyError,
        CatalogCorruptError,
        ManifestError,
        PluginError,
        QueryRefusedError,
        QueryTimeoutError,
        RecipeError,
        RegistryError,
        SourceChangedError,
        SourceError,
        StorageError,
        SubmitError,
        TemplateError,
        UnsafeMemberError,
        VerifyError,
    )
    from .jobs.spec import RenderedJob  # noqa: F401


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dataset_registry' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
