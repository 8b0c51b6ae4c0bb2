"""A project's plugin modules as shipped to a Dask cluster (executors/project_code.py): what
is packed, and how a scheduler or worker loads it (on a real cluster:
test_dask_cluster.py)."""

from __future__ import annotations

import pickle
import sys

import pytest

from dataset_registry.executors.project_code import FOLDER, Shipment, load, shipment


@pytest.fixture
def isolated(monkeypatch):
    """sys.path and sys.modules as they were, after the test."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        del sys.modules[name]


def a_project(root):
    root.mkdir()
    (root / "shipped_mod.py").write_text("VALUE = 1\n")
    package = root / "shipped_pkg"
    (package / "__pycache__").mkdir(parents=True)
    (package / "__init__.py").write_text("from .inner import INNER\n")
    (package / "inner.py").write_text("INNER = 'a'\n")
    (package / "__pycache__" / "inner.cpython-311.pyc").write_bytes(b"stale")
    return {"shipped_mod": str(root / "shipped_mod.py"), "shipped_pkg": str(package)}


def test_a_shipment_holds_the_sources_and_a_digest_of_them(tmp_path):
    modules = a_project(tmp_path / "project")
    code = shipment(modules)
    assert code.modules == ("shipped_mod", "shipped_pkg")
    assert dict(code.files) == {"shipped_mod.py": b"VALUE = 1\n",
                                "shipped_pkg/__init__.py": b"from .inner import INNER\n",
                                "shipped_pkg/inner.py": b"INNER = 'a'\n"}  # no bytecode
    assert pickle.loads(pickle.dumps(code)) == code  # travels to the cluster
    assert shipment(modules).digest == code.digest
    (tmp_path / "project" / "shipped_pkg" / "inner.py").write_text("INNER = 'b'\n")
    assert shipment(modules).digest != code.digest
    assert shipment({}) is None
    gone = {"gone_since": str(tmp_path / "gone_since.py")}  # its file removed meanwhile
    assert shipment(gone) is None
    assert shipment({**modules, **gone}).modules == code.modules


def test_loading_imports_the_shipped_version_afresh(tmp_path, isolated):
    """As a long-lived worker sees it: a second version replaces the first (modules
    forgotten, its folder first on sys.path, the old one off it)."""
    modules = a_project(tmp_path / "project")
    local = tmp_path / "worker-local"
    local.mkdir()
    first = shipment(modules)
    load(first, str(local))
    assert (sys.modules["shipped_mod"].VALUE, sys.modules["shipped_pkg"].INNER) == (1, "a")
    (tmp_path / "project" / "shipped_mod.py").write_text("VALUE = 2\n")
    (tmp_path / "project" / "shipped_pkg" / "inner.py").write_text("INNER = 'b'\n")
    second = shipment(modules)
    load(second, str(local))
    assert (sys.modules["shipped_mod"].VALUE, sys.modules["shipped_pkg"].INNER) == (2, "b")
    shipped = [p for p in sys.path if FOLDER in p]
    assert shipped == [str(local / FOLDER / second.digest)] == sys.path[:1]
    assert sys.modules["shipped_mod"].__file__.startswith(shipped[0])
    load(second, str(local))  # again (a worker's plugin set up twice): the same folder
    assert sorted(p.name for p in (local / FOLDER).iterdir()) == sorted(
        [first.digest, second.digest])


def test_a_shipped_module_that_raises_raises_where_it_is_loaded(tmp_path, isolated):
    (tmp_path / "broken_shipped.py").write_text("raise ImportError('needs site_licence')\n")
    code = shipment({"broken_shipped": str(tmp_path / "broken_shipped.py")})
    assert isinstance(code, Shipment)
    (tmp_path / "local").mkdir()
    with pytest.raises(ImportError, match="needs site_licence"):
        load(code, str(tmp_path / "local"))
