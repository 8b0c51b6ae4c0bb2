"""The executor conformance suite: every backend's test module subclasses
`ExecutorConformance` and provides the `executor` fixture (fsspec's abstract-test style).

An executor is right when every recipe built through it gives the reference
bytes (results in plan order, parts and ranges in place), and when a failing
task fails the build with the task's own error and leaves no artifact.
"""

from __future__ import annotations

import io
import os
import time
from dataclasses import dataclass

import pytest
from PIL import Image

from dataset_registry import BadImageError, Registry
from dataset_registry.executors import Executor
from dataset_registry.recipes import RECIPES
from dataset_registry.stores.base import FolderDrop

from ..buildkit import build_all, every_recipe
from ..conftest import make_tar, write_imagenet_manifest


def jpeg(i: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (24, 16), (i * 40 % 256, 90, 30)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


@dataclass(frozen=True)
class GatedDrop(FolderDrop):
    """A local drop that lets the first task through and holds every later one until the
    coordinator's `on_result` has seen a result (the `gate` file): only an executor that
    hands results over as tasks finish, not after the last, gets past it."""

    gate: str = ""

    def folder(self) -> str:
        try:
            os.close(os.open(self.gate + ".first", os.O_CREAT | os.O_EXCL))
            return self.path
        except FileExistsError:
            pass
        deadline = time.monotonic() + 20
        while not os.path.exists(self.gate):
            if time.monotonic() > deadline:
                raise TimeoutError("on_result saw no result while later tasks waited")
            time.sleep(0.01)
        return self.path


class ExecutorConformance:
    @pytest.fixture
    def executor(self) -> Executor:
        raise NotImplementedError("each backend's test module provides `executor`")

    def test_every_recipe_gives_the_reference_bytes(self, executor, synth_small,
                                                    reference_digests, tmp_path):
        reg = every_recipe(tmp_path, synth_small["imagenet-train"], synth_small["imagenet-val"])
        assert build_all(reg, executor=executor) == reference_digests
        assert reg.verify() == {k: [] for k in reg.store.committed()}

    def test_a_failing_task_fails_the_build_and_leaves_no_artifact(self, executor, tmp_path):
        members = {f"ILSVRC2012_val_{i:08d}.JPEG": jpeg(i) for i in range(1, 41)}
        members["ILSVRC2012_val_00000033.JPEG"] = b"\xff\xd8 not really a jpeg"
        tar = make_tar(tmp_path / "val.tar", members)
        write_imagenet_manifest(tmp_path, """
  - name: tiny
    recipe: downscale
    inputs: {val: val, labels: labels}
    params: {width: 8, height: 8, require_all_classes: false}
""")
        reg = Registry.open(str(tmp_path))
        reg.set_source("val", str(tar))
        with pytest.raises(BadImageError, match=r"ILSVRC2012_val_00000033\.JPEG"):
            reg.resolve("tiny", executor=executor)
        assert reg.status("tiny") == "missing"
        assert list(reg.store.committed()) == []

    def test_results_are_handed_over_as_tasks_finish(self, executor, synth_small, tmp_path):
        write_imagenet_manifest(tmp_path, """
  - name: val-by-class
    recipe: byclass
    inputs: {images: val, labels: labels}
    params: {split: val, require_all_classes: false}
""")
        reg = Registry.open(str(tmp_path))
        reg.set_source("val", synth_small["imagenet-val"])
        node = reg.manifests.get("val-by-class")
        inputs, _, _ = reg.resolver.inputs(node)
        tasks = RECIPES["byclass"].plan(node.params, inputs)
        assert len(tasks) >= 3
        gate = str(tmp_path / "gate")
        seen: list[int] = []

        def on_result(index: int, result: int) -> None:
            seen.append(index)
            open(gate, "w").close()

        out = tmp_path / "out"
        out.mkdir()
        results = executor.map(RECIPES["byclass"], node.params, tasks,
                               GatedDrop(path=str(out), gate=gate), on_result=on_result)
        assert results == [len(t) for t in tasks]  # in plan order, whatever the arrival
        assert sorted(seen) == list(range(len(tasks)))
