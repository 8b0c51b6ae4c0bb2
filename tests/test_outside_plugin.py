"""An outside plugin package (tests/plugins/outside), built and installed into a temporary
folder as a user would pip-install it, adds a layout and a recipe through the entry
points; used from the `registry` CLI with a process pool and on a Dask LocalCluster."""

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


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    import shutil

    target = tmp_path_factory.mktemp("site")
    source = tmp_path_factory.mktemp("plugin-src") / "outside"  # setuptools builds in place
    shutil.copytree(PLUGIN, source)
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


def test_an_installed_plugin_layout_and_recipe_build_on_every_executor(installed, project):
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


    assert json.loads(dask_show.stdout)["digest"] == json.loads(local.stdout)["digest"]


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


def test_without_the_plugin_the_manifest_names_what_is_missing(project):
    out = run_cli("list", cwd=project, env=env(None))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "manifests/test.yaml:4: sources[0].layout: unknown layout 'flat-labelled' " \
           "(registered: files, image-folder, imagenet-train" in out.stderr
