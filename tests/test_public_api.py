import subprocess
import sys

import pytest

import dataset_registry
from dataset_registry import errors


def test_all_is_pinned():
    assert dataset_registry.__all__ == [
        "BadImageError", "BadInputError", "BuildError", "CatalogBusyError",
        "CatalogCorruptError", "ManifestError", "Marker", "PluginError", "QueryRefusedError",
        "QueryResult",
        "QueryTimeoutError", "RecipeError", "Registry", "RegistryError", "RenderedJob",
        "Resolved", "SourceChangedError", "SourceError", "StorageError", "SubmitError",
        "TemplateError",
        "UnsafeMemberError", "VerifyError", "__version__",
    ]
    for name in dataset_registry.__all__:
        assert getattr(dataset_registry, name) is not None


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        dataset_registry.nope  # noqa: B018


def test_exception_tree_and_exit_codes():
    assert issubclass(errors.ManifestError, errors.BadInputError)
    assert issubclass(errors.UnsafeMemberError, errors.SourceError)
    assert issubclass(errors.SourceChangedError, errors.SourceError)
    assert issubclass(errors.BadInputError, errors.RegistryError)
    assert errors.BadInputError("x").exit_code == 2
    assert errors.StorageError("x").exit_code == 1 and \
        not issubclass(errors.StorageError, errors.BadInputError)
    assert errors.BuildError("x").exit_code == 1
    assert errors.VerifyError("x").exit_code == 1
    assert errors.CatalogCorruptError("x").exit_code == 1
    assert errors.QueryTimeoutError("x").exit_code == 1


def test_errors_pickle_across_processes():
    import pickle

    err = pickle.loads(pickle.dumps(errors.BadImageError("m.JPEG: truncated")))
    assert isinstance(err, errors.BadImageError) and str(err) == "m.JPEG: truncated"


def test_importing_the_package_stays_light():
    code = "import sys, dataset_registry; print('pydantic' in sys.modules, 'duckdb' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
