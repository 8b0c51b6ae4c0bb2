"""An outside plugin package (tests/plugins/outside), built and installed into a temporary
folder as a user would pip-install it, adds a layout, a recipe, a store (`folder://`) and
an executor (`serial://`) through the entry points; used from the `registry` CLI with a
process pool, on a Dask LocalCluster, and through its own store and executor, which
also pass dataset-registry's StoreSuite and ExecutorSuite there."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from .conftest import run_cli, write_manifest
from .realkit import digit_name, digits, png

PLUGIN = Path(__file__).parent / "plugins" / "outside"
MANIFEST = """
sources:
  - name: mine
    layout: flat-labelled
datasets:
  - name: gray
    recipe: grayscale
    inputs: {images: mine}
"""
BUILT_IN_ONLY = """
sources:
  - {name: data, layout: image-folder}
datasets:
  - {name: picked, recipe: select, inputs: {images: data}, params: {split: train}}
"""


@pytest.fixture(scope="module")
def plugin_copy(tmp_path_factory) -> Path:
    """The package's source, copied: setuptools builds in place, pytest writes caches."""
    import shutil

    source = tmp_path_factory.mktemp("plugin-src") / "outside"
    shutil.copytree(PLUGIN, source)
    return source


@pytest.fixture(scope="module")
def installed(tmp_path_factory, plugin_copy) -> Path:
    target = tmp_path_factory.mktemp("site")
    source = plugin_copy
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--no-build-isolation", "--target", str(target), str(source)],
                   check=True, capture_output=True, text=True)
    return target


@pytest.fixture
def project(tmp_path) -> Path:
    images, labels = digits()
    data = tmp_path / "data"
    data.mkdir()
    for i in range(300):
        (data / f"{labels[i]}__{digit_name(i)}").write_bytes(png(images[i]))
    write_manifest(tmp_path, MANIFEST)
    return tmp_path


def env(site: Path | None) -> dict[str, str]:
    paths = [str(site)] if site else []
    return {"PYTHONPATH": os.pathsep.join([*paths, os.environ.get("PYTHONPATH", "")])}


def test_an_installed_plugin_builds_on_every_executor_and_store(installed, project):
    out = run_cli("source", "set", "mine", str(project / "data"), cwd=project,
                  env=env(installed))
    assert out.returncode == 0, out.stderr
    out = run_cli("resolve", "gray", "--jobs", "2", cwd=project, env=env(installed))
    assert out.returncode == 0, out.stderr
    folder = Path(out.stdout.strip())
    _, labels = digits()
    written = sorted(folder.glob("*/*.png"))
    assert len(written) == 300
    for path in written[:20]:
        i = int(path.stem.split("-")[1])
        assert path.parent.name == str(labels[i])
        assert Image.open(io.BytesIO(path.read_bytes())).mode == "L"
    local = run_cli("show", "gray", cwd=project, env=env(installed))
    on_dask = run_cli("resolve", "gray", "--executor", "dask://local", "--jobs", "2",
                      "--store", str(project / "dask-store"), cwd=project, env=env(installed),
                      timeout=300)
    assert on_dask.returncode == 0, on_dask.stderr
    dask_show = run_cli("show", "gray", "--store", str(project / "dask-store"), cwd=project,
                        env=env(installed))
    store = f"folder://{project / 'plugin-store'}"  # the plugin's store and executor
    on_plugins = run_cli("resolve", "gray", "--executor", "serial://", "--store", store,
                         cwd=project, env=env(installed))
    assert on_plugins.returncode == 0, on_plugins.stderr
    plugin_show = run_cli("show", "gray", "--store", store, cwd=project, env=env(installed))


    assert json.loads(dask_show.stdout)["digest"] == json.loads(local.stdout)["digest"]
    assert json.loads(plugin_show.stdout)["digest"] == json.loads(local.stdout)["digest"]
    built = Path(on_plugins.stdout.strip())
    assert built.is_relative_to(project / "plugin-store") and (built / "_registry.json").exists()
    assert sorted(p.relative_to(built) for p in built.glob("*/*.png")) == \
        sorted(p.relative_to(folder) for p in written)


def test_the_plugin_label_scheme_classes_a_built_in_recipe(installed, project):
    """The plugin's `table` scheme names the classes of a built-in recipe's `labels` input:
    byclass sorts the digits into even/odd folders by the plugin's table.csv."""
    labels = project / "labels"
    labels.mkdir()
    (labels / "classes.txt").write_text("even\nodd\n")
    _, digit_labels = digits()
    (labels / "table.csv").write_text("".join(
        f"{digit_labels[i]}__{digit_name(i)},{'odd' if digit_labels[i] % 2 else 'even'}\n"
        for i in range(300)))
    manifest = project / "manifests" / "test.yaml"
    manifest.write_text(manifest.read_text().replace("datasets:\n", """files:
  - {name: parity, path: ../labels}
datasets:
  - name: by-parity
    recipe: byclass
    inputs: {images: mine, labels: parity}
    params: {labels_scheme: table, validate_images: false}
""", 1))
    assert run_cli("source", "set", "mine", str(project / "data"), cwd=project,
                   env=env(installed)).returncode == 0
    out = run_cli("resolve", "by-parity", "--jobs", "2", cwd=project, env=env(installed))
    assert out.returncode == 0, out.stderr
    built = Path(out.stdout.strip())
    for cls, parity in (("even", 0), ("odd", 1)):
        assert sorted(p.name for p in (built / cls).iterdir()) == sorted(
            f"{digit_labels[i]}__{digit_name(i)}" for i in range(300)
            if digit_labels[i] % 2 == parity)


def test_the_plugin_store_and_executor_pass_the_conformance_suites(installed, plugin_copy):
    """As the plugin's author would certify them: its own pytest module subclassing
    StoreSuite and ExecutorSuite, run where the package is installed."""
    module = plugin_copy / "check_conformance.py"  # not test_*.py: this suite skips it
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "--rootdir", str(plugin_copy), str(module)],
                          cwd=plugin_copy, env={**os.environ, **env(installed)},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    counts = done.stdout.strip().splitlines()[-1]
    assert counts.startswith("28 passed"), counts


def test_editing_the_plugin_recipe_changes_its_key(installed, project, tmp_path_factory):
    import shutil

    site = tmp_path_factory.mktemp("site-copy")
    shutil.copytree(installed, site, dirs_exist_ok=True)
    assert run_cli("source", "set", "mine", str(project / "data"), cwd=project,
                   env=env(site)).returncode == 0
    before = run_cli("show", "gray", cwd=project, env=env(site))
    module = site / "outside_registry_plugin" / "__init__.py"
    module.write_text(module.read_text().replace('format="PNG")', 'format="PNG", optimize=True)'))
    after = run_cli("show", "gray", cwd=project, env=env(site))


    assert before.returncode == after.returncode == 0, after.stderr
    assert json.loads(before.stdout)["key"] != json.loads(after.stdout)["key"]


def test_without_the_plugin_its_store_and_executor_are_user_errors(tmp_path):
    (tmp_path / "data" / "zero").mkdir(parents=True)
    (tmp_path / "data" / "zero" / "a.png").write_bytes(png(digits()[0][0]))
    write_manifest(tmp_path, BUILT_IN_ONLY)
    assert run_cli("source", "set", "data", str(tmp_path / "data"), cwd=tmp_path,
                   env=env(None)).returncode == 0
    store = run_cli("resolve", "picked", "--store", f"folder://{tmp_path / 'elsewhere'}",
                    cwd=tmp_path, env=env(None))
    executor = run_cli("resolve", "picked", "--executor", "serial://", cwd=tmp_path,
                       env=env(None))


    assert (store.returncode, executor.returncode) == (2, 2)
    assert store.stderr == ("registry: error: store folder://: no store is registered for "
                            "this scheme (registered: abfs, az, file, gs, memory, s3)\n")
    assert executor.stderr == ("registry: error: executor 'serial://': expected 'local', "
                               "'dask://HOST:PORT', 'dask://local' or a registered executor "
                               "(registered: dask, local)\n")
    assert store.stdout == executor.stdout == ""
    assert not (tmp_path / "elsewhere").exists() and not (tmp_path / "registry").exists()


def test_without_the_plugin_the_manifest_names_what_is_missing(project):
    out = run_cli("list", cwd=project, env=env(None))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "manifests/test.yaml:4: sources[0].layout: unknown layout 'flat-labelled' " \
           "(registered: files, image-folder, imagenet-train" in out.stderr
