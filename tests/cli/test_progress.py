"""Progress bars: on stderr while it is a terminal, for synth, source indexing, builds,
pull and push; nothing at all otherwise. The engine's callbacks are counted, so a bar
cannot silently come apart from the work it shows."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dataset_registry import Registry
from dataset_registry.domains.imagenet.synth import SynthSpec, image_count, synthesize
from dataset_registry.manifest import SourceNode
from dataset_registry.sources.index import check_source

from ..conftest import run_cli
from .clikit import SPLIT, TINY, write_digits


class Bars:
    """A progress factory that records each bar: label, total, unit and what was done."""

    def __init__(self) -> None:
        self.bars: list[dict[str, Any]] = []

    def __call__(self, label: str, total: int | None, unit: str = "items") -> Any:
        bar = {"label": label, "total": total, "unit": unit, "done": 0, "calls": 0}
        self.bars.append(bar)

        @contextmanager
        def opened() -> Any:
            def advance(n: int) -> None:
                bar["done"] += n
                bar["calls"] += 1
            yield advance

        return opened()

    def seen(self) -> list[tuple[str, int | None, str, int]]:
        return [(b["label"], b["total"], b["unit"], b["done"]) for b in self.bars]


def test_builds_indexing_and_transfers_advance_their_bars(project, tmp_path):
    bars = Bars()
    reg = Registry.open(str(project), progress=bars)
    info = reg.check_source("my-images", force=True)  # read again: a bar of its bytes
    assert bars.seen() == [("indexing source my-images", None, "bytes", info.bytes)]
    assert bars.bars[0]["calls"] == 15  # one a file
    reg.check_source("my-images")  # unchanged: not read, no bar
    assert len(bars.bars) == 1
    bars.bars.clear()
    built = reg.resolve(TINY, jobs=1)
    assert [(label, unit) for label, _, unit, _ in bars.seen()] == [(SPLIT, "items"),
                                                                     (TINY, "items")]
    assert all(b["done"] == b["total"] > 0 for b in bars.bars)
    bars.bars.clear()
    reg.push([TINY], str(tmp_path / "team"))
    files = built.marker.files
    # every file, and the file table; the split has no skipped-images table
    assert bars.seen() == [(f"pushing {TINY}", files + 1, "files", files + 1)]
    other = Registry.open(str(project), store=str(tmp_path / "mine"), progress=bars)
    bars.bars.clear()
    other.pull([TINY], str(tmp_path / "team"))
    assert bars.seen() == [(f"pulling {TINY} from {tmp_path / 'team'}", files + 1, "files",
                            files + 1)]
    cached = Registry.open(str(project), store=str(tmp_path / "third"), progress=bars,
                           caches=[str(tmp_path / "team")])
    bars.bars.clear()
    cached.resolve(TINY)  # from the cache, not built
    assert bars.seen() == [(f"pulling {TINY} from {tmp_path / 'team'}", files + 1, "files",
                            files + 1)]


def test_a_tar_source_counts_its_bytes_against_the_tar_size(tmp_path, synth_small):
    bars = Bars()
    node = SourceNode(name="val", file="m.yaml", line=3, layout="imagenet-val")
    tar = synth_small["imagenet-val"]
    info = check_source(node, tar, str(tmp_path / "cache"), progress=bars)
    (label, total, unit, done), = bars.seen()
    assert (label, total, unit, done) == ("indexing source val", os.path.getsize(tar),
                                          "bytes", info.bytes)
    assert bars.bars[0]["calls"] == info.files  # one a member


def test_synthesize_counts_every_image(tmp_path):
    seen: list[int] = []
    spec = SynthSpec(val_images=30, train_classes=2, train_per_class=3, width=8, height=6,
                     kaggle=False)
    synthesize(str(tmp_path), spec, progress=seen.append)
    assert seen[:30] == [1] * 30 and len(seen) == 32  # val one by one, train by class
    assert sum(seen) == image_count(spec) >= 30 + 2 * 3  # (train has hazards beside)


def test_the_s3_transfers_count_each_file(project, s3, tmp_path):
    """fsspec's bulk get/put report through a callback: counted here against moto."""
    bars = Bars()
    bucket = s3.bucket()
    reg = Registry.open(str(project), progress=bars, storage_options=s3.options())
    files = reg.resolve(SPLIT, jobs=1).marker.files
    bars.bars.clear()
    reg.push([SPLIT], f"{bucket.url}/team")
    assert bars.seen() == [(f"pushing {SPLIT}", files + 1, "files", files + 1)]
    far = Registry.open(str(project), store=f"{bucket.url}/other", progress=bars,
                        storage_options=s3.options())
    bars.bars.clear()
    far.pull([SPLIT], f"{bucket.url}/team")  # down, then up: each file twice
    assert bars.seen() == [(f"pulling {SPLIT} from {bucket.url}/team", 2 * (files + 1),
                            "files", 2 * (files + 1))]


def test_off_a_terminal_there_is_no_progress_noise(tmp_path):
    """stderr a pipe (a log, CI): every command that shows bars on a terminal prints
    exactly its lines, and nothing else, on either stream."""
    assert run_cli("init", "p", cwd=tmp_path).returncode == 0
    write_digits(tmp_path / "digits")
    root = tmp_path / "p"
    out = run_cli("source", "set", "my-images", str(tmp_path / "digits"), cwd=root)
    assert (out.returncode, out.stderr) == (0, "")
    assert out.stdout.startswith("my-images: 15 images, 1832 bytes")
    out = run_cli("resolve", TINY, cwd=root)
    assert (out.returncode, out.stderr) == (0, "") and len(out.stdout.splitlines()) == 1
    out = run_cli("push", TINY, "--to", str(tmp_path / "team"), cwd=root)
    assert (out.returncode, out.stderr) == (0, "") and len(out.stdout.splitlines()) == 1
    out = run_cli("synth", "imagenet", str(tmp_path / "fake"), "--val-images", "20",
                  "--train-classes", "1", "--train-per-class", "2", "--no-kaggle",
                  "--size", "8x6", "-j", "1", cwd=tmp_path)
    assert (out.returncode, out.stderr) == (0, "")
    assert out.stdout.splitlines()[-1].startswith("SYNTHETIC data")


def on_a_terminal(*args: str, cwd: Path) -> tuple[int, str, str]:
    """`registry ARGS` with stderr on a pseudo-terminal, stdout on a pipe: (exit code,
    stdout, what the terminal got)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "dataset_registry.cli", *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=follower, text=True,
                            env={**os.environ, "TERM": "xterm", "COLUMNS": "120"})
    os.close(follower)
    screen = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 120)
        if not ready:
            proc.kill()
            raise AssertionError(f"no end in 120 s; the terminal got {screen[-500:]!r}")
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed its end
            break
        if not chunk:
            break
        screen += chunk
    os.close(leader)
    stdout = proc.stdout.read() if proc.stdout else ""
    return proc.wait(timeout=60), stdout, screen.decode(errors="replace")


def test_on_a_terminal_the_bars_show_on_stderr_and_stdout_stays_clean(tmp_path):
    assert run_cli("init", "p", cwd=tmp_path).returncode == 0
    write_digits(tmp_path / "digits", per_class=40)
    root = tmp_path / "p"
    code, out, screen = on_a_terminal("source", "set", "my-images", str(tmp_path / "digits"),
                                      cwd=root)
    assert code == 0 and out.startswith("my-images: 120 images")
    assert "indexing source my-images" in screen
    code, out, screen = on_a_terminal("resolve", SPLIT, "-j", "1", cwd=root)
    assert code == 0 and SPLIT in screen and "items" in screen
    assert out == f"{Registry.open(str(root)).built(SPLIT).path}\n"  # no escape codes
    code, out, screen = on_a_terminal("push", SPLIT, "--to", str(tmp_path / "team"),
                                      cwd=root)
    assert code == 0 and f"pushing {SPLIT}" in screen and "\x1b" not in out
    code, out, screen = on_a_terminal("synth", "imagenet", str(tmp_path / "fake"),
                                      "--val-images", "300", "--no-kaggle", "--size", "8x6",
                                      "-j", "1", cwd=tmp_path)
    assert code == 0 and f"synthesizing into {tmp_path / 'fake'}" in screen
    assert "images" in screen and out.splitlines()[-1].startswith("SYNTHETIC data")
