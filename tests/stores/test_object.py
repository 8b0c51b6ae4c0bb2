"""The one object store over fsspec, on protocols other than S3 (tests/stores/test_s3.py
runs the same store against moto's S3 server): fsspec's `memory://` filesystem runs the
store conformance suite and whole builds; gs:// and az:// without their packages are a
user error naming the package."""

from __future__ import annotations

import importlib.util
import uuid
from pathlib import Path

import pytest

from dataset_registry import BadInputError
from dataset_registry.core.remote import Remote
from dataset_registry.stores import open_store
from dataset_registry.stores.object import ObjectStore
from dataset_registry.testing.echo import use_echo
from dataset_registry.testing.sources import open_project, write_image_folder
from dataset_registry.testing.stores import StoreSuite

from ..conftest import run_cli, write_manifest

DATASETS = [{"name": "picked", "recipe": "select",
             "inputs": {"images": "data"}, "params": {"split": "train", "folders": True}},
            {"name": "small", "recipe": "downscale", "inputs": {"train": "picked"},
             "params": {"width": 8, "height": 6}},  # reads another build's artifact
            {"name": "echoed", "recipe": "echo", "inputs": {"images": "picked"},
             "params": {"chunk": 5}}]  # five tasks: with jobs=2, on the pool


def memory_url() -> str:
    """A fresh prefix: fsspec's memory filesystem is one per process, shared by tests."""
    return f"memory://registry-{uuid.uuid4().hex[:12]}/store"


class TestMemoryStore(StoreSuite):
    @pytest.fixture
    def store(self, tmp_path):
        store = open_store(memory_url(), Remote(), str(tmp_path / "cache"))
        assert isinstance(store, ObjectStore)
        store.grace_seconds = 0  # the crash test's leftovers are seconds old
        return store


@pytest.fixture
def echo():
    with use_echo():
        yield


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_resolve_into_a_memory_store_gives_the_local_digests(tmp_path, jobs, echo):
    """Within one process; with jobs=2 the pool's workers cannot see this process's
    memory, so they write into the coordinator's staging and the commit uploads it."""
    source = write_image_folder(tmp_path / "data")
    local = open_project(tmp_path / "local", {"data": source}, DATASETS)
    url = memory_url()
    remote = open_project(tmp_path / "mem", {"data": source}, DATASETS, store=url)
    for name in ("picked", "small", "echoed"):
        expected = local.resolve(name, jobs=1).digest
        built = remote.resolve(name, jobs=jobs)
        assert built.digest == expected
        assert built.uri == f"{url}/{built.key[:2]}/{built.key}"
    assert remote.verify() == {k: [] for k in remote.store.committed()}
    assert sorted(remote.store.committed()) == sorted(local.store.committed())
    small = remote.built("small")
    assert sorted(p.name for p in Path(small.path).iterdir()) == \
        sorted(p.name for p in Path(local.built("small").path).iterdir())


def test_memory_store_and_memory_source_from_python(tmp_path):
    """A source on memory:// is indexed and read through the same protocol table."""
    import fsspec

    source = write_image_folder(tmp_path / "data")
    prefix = memory_url().replace("/store", "/raw")
    fs = fsspec.filesystem("memory")
    for path in sorted(source.rglob("*.*")):
        fs.pipe_file(f"{prefix}/{path.relative_to(source).as_posix()}", path.read_bytes())
    local = open_project(tmp_path / "local", {"data": source}, DATASETS[:1])
    remote = open_project(tmp_path / "mem", {"data": prefix}, DATASETS[:1],
                          store=memory_url())
    assert remote.resolve("picked", jobs=1).digest == local.resolve("picked", jobs=1).digest


@pytest.mark.parametrize(("scheme", "package"), [("gs", "gcsfs"), ("az", "adlfs"),
                                                 ("abfs", "adlfs")])
def test_a_store_whose_package_is_missing_names_it(tmp_path, scheme, package):
    if importlib.util.find_spec(package) is not None:
        pytest.skip(f"{package} is installed here")
    with pytest.raises(BadInputError) as info:
        open_store(f"{scheme}://bucket/prefix", Remote(), str(tmp_path / "cache"))
    assert str(info.value) == (f"{scheme}:// needs {package}, which is not installed: "
                               f"pip install '{package}'")
    write_manifest(tmp_path, """
sources:
  - {name: data, layout: image-folder}
datasets:
  - {name: picked, recipe: select, inputs: {images: data}, params: {split: train}}
""")
    done = run_cli("--root", str(tmp_path), "--store", f"{scheme}://bucket/prefix",
                   "resolve", "picked", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr == (f"registry: error: {scheme}:// needs {package}, which is not "
                           f"installed: pip install '{package}'\n")
    assert done.stdout == "" and not (tmp_path / "registry").exists()
