"""Shared fixtures: synthetic ImageNet sources and throwaway registries.

Everything is real: tars on disk, process pools, an embedded DuckDB file.
The full 50,000-image val set is synthesized once per session at a small
image size so the whole suite fits a 2-core machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dataset_registry import Registry
from dataset_registry.domains.imagenet.synth import SynthSpec, synthesize

REPO = Path(__file__).resolve().parents[1]
MANIFESTS = REPO / "manifests"
SHARED = REPO.parent / "shared" / "data"
LISTS = MANIFESTS / "imagenet" / "lists"
LABELS = REPO / "src" / "dataset_registry" / "domains" / "imagenet" / "data" / "labels"


@pytest.fixture(scope="session")
def synth_small(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """600 val images, 3 train classes x 4 (+ hazards), Kaggle layout too."""
    out = tmp_path_factory.mktemp("synth-small")
    return synthesize(str(out), SynthSpec(val_images=600, train_classes=3, train_per_class=4,
                                          width=32, height=24), jobs=1)


@pytest.fixture(scope="session")
def synth_full(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """All 50,000 val image names (tiny pixels), for the calibration lists; one train image
    per class (all 1000, with the hazards), so every shipped variant can be built."""
    out = tmp_path_factory.mktemp("synth-full")
    return synthesize(str(out), SynthSpec(val_images=50_000, train_classes=1000, train_per_class=1,
                                          width=16, height=12, kaggle=False), jobs=2)


def make_registry(root: Path, manifests: Path = MANIFESTS) -> Registry:
    return Registry.open(str(root), manifests=str(manifests))


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    """A registry over the shipped manifests, with its own store, catalog and state."""
    return make_registry(tmp_path)


def concurrently(fn: Callable[[int], Any], n: int) -> tuple[list[Any], list[Exception]]:
    """Run fn(0) .. fn(n - 1) on n threads at once: (results by i, errors raised)."""
    results: list[Any] = [None] * n
    errors: list[Exception] = []

    def run(i: int) -> None:
        try:
            results[i] = fn(i)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, errors


def write_manifest(root: Path, text: str, name: str = "test.yaml") -> Path:
    folder = root / "manifests"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def write_imagenet_manifest(root: Path, datasets: str) -> Path:
    """A manifest with sources `train` and `val` (ImageNet layouts), the file `labels`
    (the shipped label folder), and the given `datasets:` entries."""
    return write_manifest(root, f"""
sources:
  - {{name: train, layout: imagenet-train}}
  - {{name: val, layout: imagenet-val}}
files:
  - {{name: labels, path: {LABELS}}}
datasets:
{datasets.lstrip(chr(10))}""")


def make_tar(path: Path, members: dict[str, bytes], *, kind: dict[str, bytes] | None = None
             ) -> Path:
    """A plain tar (not marked synthetic) with the given member bytes."""
    path.write_bytes(tar_bytes(members))
    return path


def tar_bytes(members: dict[str, bytes]) -> bytes:
    """The bytes of a plain tar holding `members` (name -> bytes), in order."""
    import io

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dataset_registry.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def cli_env(root: Path) -> dict[str, str]:
    return {"DATASET_REGISTRY_MANIFESTS": str(MANIFESTS)}


def copy_manifests(root: Path) -> Path:
    """A private copy of the shipped manifests (and the label data they point at)."""
    shutil.copytree(MANIFESTS, root / "manifests")
    shutil.copytree(LABELS, root / LABELS.relative_to(REPO))
    return root / "manifests"


def make_train_tar(path: Path, classes: dict[str, dict[str, bytes]]) -> Path:
    """An ILSVRC2012_img_train.tar-shaped tar of per-class tars (not marked synthetic)."""
    return make_tar(path, {f"{wnid}.tar": tar_bytes(images) for wnid, images in classes.items()})


@pytest.fixture(scope="session")
def s3():
    """A moto S3 server on 127.0.0.1 for the whole session (tests take their own bucket)."""
    from .s3kit import S3Endpoint

    endpoint = S3Endpoint().start()
    yield endpoint
    endpoint.stop()


@pytest.fixture(scope="session")
def reference_digests(synth_small, tmp_path_factory) -> dict[str, str]:
    """Every recipe built inline (one worker, local store): what every executor and store
    must reproduce."""
    from .buildkit import build_all, every_recipe

    root = tmp_path_factory.mktemp("reference")
    reg = every_recipe(root, synth_small["imagenet-train"], synth_small["imagenet-val"])
    return build_all(reg, jobs=1)


@pytest.fixture(scope="session")
def dask_cluster():
    """A real distributed.LocalCluster: 2 single-threaded worker processes."""
    import distributed

    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=":0")
    yield cluster
    cluster.close()


def dask_address(cluster) -> str:
    """The executor spec of a running cluster: dask://HOST:PORT."""
    return "dask://" + cluster.scheduler_address.removeprefix("tcp://")


@pytest.fixture
def ctrl_c_raises() -> Iterator[None]:
    """SIGINT at Python's own handler, raising KeyboardInterrupt, for a test sending it to
    itself (a pytest started as a background job ignores it); put back after."""
    import signal

    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def as_from_a_terminal(args: list[str]) -> list[str]:
    """`args` run as a terminal runs a command: SIGINT at its default and not blocked, whatever
    this test process holds. A shell without job control starts a background job (`pytest
    ... &`, `.ci/run > log &`) with SIGINT ignored (POSIX, so that Ctrl-C at the terminal
    spares it); every child inherits that across fork and exec, and a Python started so
    keeps it ignored: a `registry sql` sent SIGINT ran on (30 s timeouts seen in full runs,
    never in a test run alone; a test started with `&` gives them). Tests that send SIGINT
    start their child through this; a run's summary says when this process ignores SIGINT."""
    code = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
            "signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT}); "
            "os.execv(sys.argv[1], sys.argv[1:])")
    return [sys.executable, "-c", code, *args]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Said at the end, -q or not: a run started as a background job ignores SIGINT."""
    import signal

    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        terminalreporter.write_line(
            "note: this pytest ignores SIGINT (started as a background job?); its children "
            "inherit that unless started through as_from_a_terminal")
