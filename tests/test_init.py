"""`registry init`: a new project, its examples, refusals, and an installed wheel."""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dataset_registry import PluginError, plugins
from dataset_registry.core.keys import tree_key
from dataset_registry.init import IMAGE_FOLDER
from dataset_registry.manifest import load_manifests
from dataset_registry.recipes import RECIPES

from .conftest import LABELS, MANIFESTS, REPO, run_cli

PACKAGED = REPO / "src" / "dataset_registry" / "domains" / "imagenet" / "manifests"
PLUGIN_MODULE = REPO / "src" / "dataset_registry" / "examples" / "plugin" / "my_plugin.py"
NO_ENV = {"DATASET_REGISTRY_MANIFESTS": "", "DATASET_REGISTRY_STORE": "",
          "DATASET_REGISTRY_CATALOG": ""}  # empty: the project's own defaults


def test_the_repos_manifests_are_the_packages_copy():
    """One source of truth: the demo project's manifests/ is the package's folder."""
    assert MANIFESTS.resolve() == PACKAGED.resolve()


def test_init_image_folder_writes_a_project(tmp_path):
    project = tmp_path / "new" / "proj"  # made, with its parent
    out = run_cli("init", str(project), cwd=tmp_path, env=NO_ENV)
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in project.iterdir()) == [".gitignore", "manifests",
                                                         "registry.toml"]
    config = (project / "registry.toml").read_text()
    assert "# plugins = []" in config
    for default in ("./registry", "./catalog.duckdb", "DATASET_REGISTRY_STORE"):
        assert default in config
    assert plugins.read_config(str(project)) == {}  # valid TOML, no plugins yet
    ignored = (project / ".gitignore").read_text().splitlines()
    assert {"registry/", "catalog.duckdb*", ".registry-state/"} <= set(ignored)
    manifest = project / "manifests" / "my-images.yaml"
    text = manifest.read_text()
    assert text == IMAGE_FOLDER
    for needed in ("layout: image-folder", "recipe: sample",
                   "params: {seed: 0, splits: {train: 0.8, val: 0.2}}", "recipe: downscale",
                   "params: {width: 32, height: 32"):
        assert needed in text
    assert not [p for p in project.iterdir() if p.name.startswith(".registry-init")]
    if "sample" in RECIPES:  # once the recipe exists, the example must load as written
        m = load_manifests(str(project / "manifests"))
        assert {"my-images", "my-images-split", "my-images-32x32"} <= set(m.nodes)
        listed = run_cli("list", cwd=project, env=NO_ENV)
        assert listed.returncode == 0, listed.stderr
        assert "my-images-32x32" in listed.stdout


def test_init_imagenet_writes_the_shipped_manifests(tmp_path):
    out = run_cli("init", "--example", "imagenet", cwd=tmp_path, env=NO_ENV)  # DIR: here
    assert out.returncode == 0, out.stderr
    cmp = filecmp.dircmp(tmp_path / "manifests", PACKAGED, ignore=["__pycache__"])

    def same(c: filecmp.dircmp) -> bool:
        return not (c.left_only or c.right_only or c.diff_files or c.funny_files) and \
            all(same(s) for s in c.subdirs.values())
    assert same(cmp)
    listed = run_cli("list", "--tags", "calibration", cwd=tmp_path, env=NO_ENV)
    assert listed.returncode == 0, listed.stderr
    assert "imagenet-calibration-mlperf.option1\tdataset\tcalibration\tsource unset" in \
        listed.stdout
    assert run_cli("job", "list", cwd=tmp_path, env=NO_ENV).returncode == 0


def test_init_keeps_an_existing_gitignore_and_empty_manifests(tmp_path):
    (tmp_path / ".gitignore").write_text("*.pyc\nregistry/")
    (tmp_path / "manifests").mkdir()
    (tmp_path / "README.md").write_text("mine\n")
    out = run_cli("init", str(tmp_path), cwd=tmp_path, env=NO_ENV)
    assert out.returncode == 0, out.stderr
    lines = (tmp_path / ".gitignore").read_text().splitlines()
    assert lines[:2] == ["*.pyc", "registry/"]
    assert lines.count("registry/") == 1 and "catalog.duckdb*" in lines
    assert (tmp_path / "README.md").read_text() == "mine\n"
    assert (tmp_path / "manifests" / "my-images.yaml").is_file()


@pytest.mark.parametrize("existing", ["registry.toml", "manifests/a.yaml"])
def test_init_never_overwrites_a_project(tmp_path, existing):
    path = tmp_path / existing
    path.parent.mkdir(exist_ok=True)
    path.write_text("mine\n")
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    out = run_cli("init", str(tmp_path), "--example", "imagenet", cwd=tmp_path, env=NO_ENV)
    assert out.returncode == 2
    shown = str(path) if existing == "registry.toml" else str(path.parent) + "/"
    assert out.stderr == (f"registry: error: init: {tmp_path} already holds a project "
                          f"({shown}); init never overwrites one: choose an empty or new "
                          "folder\n")
    assert path.read_text() == "mine\n"
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before


def test_init_refuses_a_file_and_a_file_on_the_way(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    out = run_cli("init", str(target), cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr == f"registry: error: init: {target} exists and is not a folder\n"
    out = run_cli("init", str(target / "sub" / "proj"), cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr == f"registry: error: init: {target} exists and is not a folder\n"
    assert target.read_text() == "x"


@pytest.fixture
def unwritable(tmp_path):
    """A folder this process may not write: chmod 500 stops no root (CI runs as root), so
    as root a read-only tmpfs mounted there (EROFS, where others get EACCES)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    if os.geteuid() != 0:
        locked.chmod(0o500)
        try:
            yield locked
        finally:
            locked.chmod(0o700)
        return
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(locked)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here ({done.stderr.strip()})")
    try:
        yield locked
    finally:
        subprocess.run(["umount", str(locked)], check=False)


def test_init_refuses_an_unwritable_folder(tmp_path, unwritable):
    locked = unwritable
    with pytest.raises(OSError):  # the premise: this process cannot write there
        (locked / "probe").write_text("x")
    out = run_cli("init", str(locked), cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr == f"registry: error: init: cannot write {locked}: permission denied\n"
    out = run_cli("init", str(locked / "proj"), cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr == (f"registry: error: init: cannot create {locked / 'proj'}: {locked} "
                          "is not writable\n")
    assert list(locked.iterdir()) == []


def test_init_refuses_an_unknown_example(tmp_path):
    out = run_cli("init", str(tmp_path / "p"), "--example", "cifar", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr == ("registry: error: init: unknown example 'cifar' (known: "
                          "image-folder, imagenet, plugin)\n")
    assert "Traceback" not in out.stderr and not (tmp_path / "p").exists()
    from dataset_registry.errors import BadInputError
    from dataset_registry.init import init_project

    with pytest.raises(BadInputError, match=r"unknown example 'cifar' \(known: image-folder, "
                       r"imagenet, plugin\)"):
        init_project(str(tmp_path / "p"), "cifar")
    assert not (tmp_path / "p").exists()


def _wheel_sources(tmp_path: Path) -> Path:
    """What a wheel is built from, copied: the build writes build/ and *.egg-info beside it."""
    tree = tmp_path / "tree"
    tree.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, tree / name)
    shutil.copytree(REPO / "src", tree / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    return tree


def test_init_and_list_work_from_an_installed_wheel(tmp_path):
    """No source tree on the path: manifests, lists and labels come from package data."""
    import setuptools

    tree = _wheel_sources(tmp_path)
    wheels, target = tmp_path / "wheels", tmp_path / "target"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    # the installed setuptools when it is recent enough for pyproject.toml (>= 77), else
    # pip's isolated build environment from its configured index
    new_enough = int(setuptools.__version__.split(".")[0]) >= 77
    build = [*pip, "wheel", "--no-deps", *(["--no-build-isolation"] if new_enough else []),
             "-w", str(wheels), str(tree)]
    out = subprocess.run(build, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    (wheel,) = wheels.glob("dataset_registry-*.whl")
    out = subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    project = tmp_path / "fresh"
    project.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target), **NO_ENV}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "dataset_registry.cli", *args],
                              cwd=project, capture_output=True, text=True, env=env, timeout=120)

    where = subprocess.run([sys.executable, "-c", "import dataset_registry as d; "
                            "print(d.__file__)"], cwd=project, capture_output=True, text=True,
                           env=env)
    assert where.stdout.startswith(str(target)), where.stdout + where.stderr
    out = cli("init", "--example", "imagenet")
    assert out.returncode == 0, out.stderr
    out = cli("list")
    assert out.returncode == 0, out.stderr
    for name in ("imagenet-calibration-mlperf.option1", "imagenet-min-calibration-all.500",
                 "imagenet-labels"):
        assert f"\n{name}\t" in out.stdout
    out = cli("show", "imagenet-labels")
    assert out.returncode == 0, out.stderr
    assert f'"key": "{tree_key(str(LABELS))}"' in out.stdout  # content-keyed: as in the repo
    out = cli("init", "--example", "plugin", "with-plugin")  # its module is in the wheel too
    assert out.returncode == 0, out.stderr
    assert (project / "with-plugin" / "my_plugin.py").read_text() == PLUGIN_MODULE.read_text()
    out = cli("--root", "with-plugin", "list")
    assert (out.returncode, out.stderr) == (0, "")
    assert "my-photos-gray\tdataset\tmy-grayscale\tsource unset" in out.stdout
    out = cli("--help")  # ImageNet's commands: the wheel's own dataset_registry.commands
    assert out.returncode == 0, out.stderr
    for line in ("synth               write a synthetic ImageNet-shaped source",
                 "eval                top-1..5 classification error of val predictions",
                 "demo                synthesize ImageNet, resolve calibration sets, query"):
        assert line in out.stdout


def test_a_plugin_example_is_written_like_a_built_in_one(tmp_path):
    """An outside domain ships its own `registry init --example`: the `examples` kind."""
    from dataset_registry.init import Example, init_project
    from dataset_registry.testing.registration import registered

    pets = Example("pets, as class folders", "pets", files={
        "pets.yaml": "sources:\n  - {name: pets, layout: image-folder}\n",
        "lists/keep.txt": "cat\n"})
    with registered("examples", "pets", pets):
        written = init_project(str(tmp_path / "p"), "pets")
    assert written == ["registry.toml", ".gitignore", "manifests/pets.yaml",
                       "manifests/lists/keep.txt"]
    assert (tmp_path / "p" / "manifests" / "lists" / "keep.txt").read_text() == "cat\n"
    escaping = Example("escapes", "x", files={"../outside.yaml": "sources: []\n"})
    with registered("examples", "escaping", escaping), \
            pytest.raises(PluginError, match=r"file '\.\./outside\.yaml' is not a relative "
                          r"path inside manifests/"):
        init_project(str(tmp_path / "e"), "escaping")
    assert not (tmp_path / "e").exists() and not (tmp_path / "outside.yaml").exists()
    with registered("examples", "broken", "dataset_registry.init:CONFIG"), \
            pytest.raises(PluginError, match=r"example 'broken' from .* is not a "
                          r"dataset_registry\.init\.Example"):
        init_project(str(tmp_path / "q"), "broken")
    assert not (tmp_path / "q").exists()


def flat_photos(folder: Path) -> dict[str, str]:
    """The plugin example's source: 9 images named <class>__<name> in one folder (and
    a hidden file its layout leaves out); {file name: class}."""
    from dataset_registry.testing.sources import image_bytes

    folder.mkdir()
    classes = {}
    for i in range(9):
        name = f"{('cat', 'dog', 'owl')[i % 3]}__{i:03d}.{'jpg' if i % 2 else 'png'}"
        (folder / name).write_bytes(image_bytes(i, 90, 60))
        classes[name] = name.split("__")[0]
    (folder / ".DS_Store").write_bytes(b"litter")
    return classes


def test_init_plugin_example_is_a_project_with_a_working_plugin(tmp_path):
    """`registry init --example plugin` writes registry.toml naming my_plugin.py (a layout
    and a recipe), and a manifest using both; pointed at a folder, it builds, with 1 and 2
    workers, the same bytes."""
    from PIL import Image

    project = tmp_path / "p"
    out = run_cli("init", str(project), "--example", "plugin", cwd=tmp_path, env=NO_ENV)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[1:] == ["  registry.toml", "  .gitignore", "  my_plugin.py",
                                           "  manifests/my-photos.yaml",
                                           "next: point a source at your data (registry "
                                           "source set my-photos PATH), then registry list"]
    assert plugins.read_config(str(project))["plugins"] == ["my_plugin"]
    assert (project / "my_plugin.py").read_text() == PLUGIN_MODULE.read_text()
    classes = flat_photos(tmp_path / "photos")
    out = run_cli("source", "set", "my-photos", str(tmp_path / "photos"), cwd=project,
                  env=NO_ENV)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("my-photos: 9 images, ")
    digests = []
    for jobs, store in (("1", "registry"), ("2", "store-2")):
        out = run_cli("resolve", "my-photos-gray", "--jobs", jobs, "--store", store,
                      cwd=project, env=NO_ENV)
        assert out.returncode == 0, out.stderr
        built = Path(out.stdout.strip())
        assert built.is_relative_to(project / store)
        pngs = sorted(p.relative_to(built).as_posix() for p in built.glob("*/*.png"))
        assert pngs == sorted(f"{c}/{n.rsplit('.', 1)[0]}.png" for n, c in classes.items())
        for png in pngs:
            with Image.open(built / png) as image:
                assert image.mode == "L" and max(image.size) == 64
        assert (built / "count.txt").read_text() == "9\n"
        shown = run_cli("show", "my-photos-gray", "--store", store, cwd=project, env=NO_ENV)
        digests.append(json.loads(shown.stdout)["digest"])
    assert digests[0] == digests[1]


def test_init_plugin_example_never_overwrites_a_module(tmp_path):
    (tmp_path / "my_plugin.py").write_text("mine\n")
    out = run_cli("init", str(tmp_path), "--example", "plugin", cwd=tmp_path, env=NO_ENV)
    assert out.returncode == 2
    assert out.stderr == (f"registry: error: init: {tmp_path} already holds a project "
                          f"({tmp_path / 'my_plugin.py'}); init never overwrites one: choose "
                          "an empty or new folder\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my_plugin.py"]
    assert (tmp_path / "my_plugin.py").read_text() == "mine\n"
