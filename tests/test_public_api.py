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


def test_the_old_import_paths_of_moved_modules_still_work_and_say_where_they_went():
    """Issue 17 moved the flat modules into packages; code written against the old paths
    gets the same module objects (not copies: one class, one registry) and a warning."""
    import importlib
    import warnings

    from dataset_registry import _moved

    for old, new in sorted(_moved.MOVED.items()):
        sys.modules.pop(old, None)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            module = importlib.import_module(old)
        assert module is importlib.import_module(new), old
        assert any(issubclass(w.category, DeprecationWarning) and new in str(w.message)
                   for w in caught), old
    with pytest.warns(DeprecationWarning, match="dataset_registry.sources.layouts.files"):
        from dataset_registry.layouts.files import Files

    from dataset_registry.sources.layouts.files import Files as moved

    assert Files is moved
    # the two modules that became packages forward their old names (with a warning), and
    # their submodules stay submodules
    with pytest.warns(DeprecationWarning, match="moved to dataset_registry.jobs.spec."):
        from dataset_registry.jobs import RenderedJob, render, spec
    with pytest.warns(DeprecationWarning, match="moved to dataset_registry.sources.index."):
        from dataset_registry.sources import check_source, index

    assert render is spec.render and RenderedJob is spec.RenderedJob  # the function, as before
    assert index.__name__ == "dataset_registry.sources.index" and check_source is index.check_source
