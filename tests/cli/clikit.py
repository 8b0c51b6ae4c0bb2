"""A small real project for the CLI's tests: `registry init` (the image-folder example)
with its source set to 15 real handwritten digits (3 classes of 5), run in-process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dataset_registry import cli

from ..realkit import digits, png

SPLIT, TINY, SHARDS = "my-images-split", "my-images-32x32", "my-images-shards"


def write_digits(folder: Path, classes: int = 3, per_class: int = 5) -> Path:
    """`<label>/dNNNN.png`: the first `per_class` digits of each label below `classes`."""
    images, labels = digits()
    count: dict[int, int] = {}
    for i, (pixels, label) in enumerate(zip(images, labels, strict=True)):
        if label < classes and count.get(label, 0) < per_class:
            count[label] = count.get(label, 0) + 1
            (folder / str(label)).mkdir(parents=True, exist_ok=True)
            (folder / str(label) / f"d{i:04d}.png").write_bytes(png(pixels))
    return folder


def make_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "proj"
    assert cli.main(["init", str(root)]) == 0
    write_digits(tmp_path / "digits")
    monkeypatch.chdir(root)
    assert cli.main(["source", "set", "my-images", str(tmp_path / "digits")]) == 0
    return root


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """`registry ARGV` in this process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    """`registry ARGV --json`: exit 0, nothing on stderr, one JSON document on stdout."""
    code, out, err = run(capsys, *argv, "--json")
    assert (code, err) == (0, ""), err
    return json.loads(out)  # one document: a second one would not parse
