import os
import stat
from pathlib import Path

import pytest

from dataset_registry.stores import LocalStore
from dataset_registry.testing.stores import (
    KEY,
    StoreSuite,
    build,
    finalized,
    overwrite,
    run_fake_task,
)


def write_bits(folder: Path) -> dict[str, int]:
    """Every path under `folder` (itself too) with write bits set: {relative path: bits}."""
    found = {}
    for path in [folder, *folder.rglob("*")]:
        bits = stat.S_IMODE(path.lstat().st_mode) & 0o222
        if bits:
            found[str(path.relative_to(folder))] = bits
    return found


class TestLocalStore(StoreSuite):
    @pytest.fixture
    def store(self, tmp_path):
        return LocalStore(str(tmp_path / "store"))

    def test_a_committed_artifact_is_read_only(self, store) -> None:
        build(store)
        folder = Path(store.local_path(KEY))
        assert (folder / "a" / "x.bin").exists()
        assert write_bits(folder) == {}
        assert os.access(folder.parent, os.W_OK)  # the <key[:2]> folder stays writable

    def test_delete_and_gc_restore_write_bits_before_removing(self, store) -> None:
        build(store)
        folder = Path(store.local_path(KEY))
        store.delete(KEY)
        assert not folder.exists()
        staging = store.begin(KEY)  # a crashed build that got as far as sealing its files
        run_fake_task(store, staging, "000000", {"x": b"1"})
        Path(staging.path, "x").chmod(0o444)
        Path(staging.path).chmod(0o555)
        for path in store.leftovers():
            store.remove_leftover(path)
        assert not os.path.exists(staging.path) and store.leftovers() == []
        assert os.listdir(Path(store.root, ".staging")) == []

    def test_replace_leaves_a_read_only_artifact_and_nothing_aside(self, store) -> None:
        build(store)
        overwrite(store, "b.txt", b"HELLO")
        staging = store.begin(KEY)
        run_fake_task(store, staging, "000000", {"b.txt": b"hello"})
        store.replace(staging, finalized(staging))
        folder = Path(store.local_path(KEY))
        assert (folder / "b.txt").read_bytes() == b"hello" and write_bits(folder) == {}
        assert os.listdir(Path(store.root, ".staging")) == []


LINKER = '''
import os
from typing import ClassVar

from dataset_registry.plugins import register
from dataset_registry.recipes import InputSpec, Params, Recipe


class LinkerParams(Params):
    target: str
    by: str = "run"


class Linker(Recipe):
    """A file a task, and a symbolic link to `target` written by `run` or by `finish`."""

    name = "linker"
    version = 1
    Params = LinkerParams
    inputs: ClassVar = {"images": InputSpec("images")}

    @classmethod
    def plan(cls, params, inputs):
        return [0, 1, 2]

    @classmethod
    def run(cls, params, task, out):
        out.write(f"file-{task}.txt", b"mine")
        if params.by == "run" and task == 1:
            os.symlink(params.target, out.target("leak"))
        return task

    @classmethod
    def finish(cls, params, inputs, results, out, context=None):
        if params.by == "finish":
            os.symlink(params.target, out.target("leak"))


register("recipes", "linker", Linker)
'''


@pytest.fixture(scope="module")
def linking(tmp_path_factory):
    from ..pluginkit import plugin_project

    root = tmp_path_factory.mktemp("linking")
    secret = root / "secret.txt"
    secret.write_text("outside the store\n")
    return plugin_project(root, {"my_plugin": LINKER}, f"""\
  - {{name: by-run, recipe: linker, inputs: {{images: data}}, params: {{target: {secret}}}}}
  - {{name: by-finish, recipe: linker, inputs: {{images: data}},
     params: {{target: {secret}, by: finish}}}}
  - {{name: climbing, recipe: linker, inputs: {{images: data}},
     params: {{target: ../../../secret.txt}}}}
""")


@pytest.mark.parametrize("jobs", ["1", "2"])
@pytest.mark.parametrize("name", ["by-run", "by-finish", "climbing"])
def test_a_plugin_recipe_writing_a_link_out_is_refused_at_commit(linking, name, jobs):
    """Refused before the artifact is sealed or published, not only by a later verify:
    one line naming the dataset and the link, exit 1, staging removed, and what the link
    points at untouched (sealing would have chmodded through it)."""
    import json

    from ..conftest import run_cli
    from ..pluginkit import published

    secret = linking / "secret.txt"
    mode = secret.stat().st_mode
    key = json.loads(run_cli("show", name, cwd=linking).stdout)["key"]
    target = "../../../secret.txt" if name == "climbing" else str(secret)
    done = run_cli("resolve", name, "--jobs", jobs, cwd=linking)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (f"registry: error: {name} (key {key}): 'leak' is a symbolic link "
                           f"leading out of the artifact (to {target!r}); refused: nothing is "
                           "published\n")
    assert published(linking) == []
    assert secret.stat().st_mode == mode and secret.read_text() == "outside the store\n"
