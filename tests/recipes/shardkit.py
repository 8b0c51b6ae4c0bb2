"""Shared by the recipe tests: a registry over one synthetic source, the labels, a count of
the images a build opens."""

from pathlib import Path

import pytest
from PIL import Image

from dataset_registry import Registry
from dataset_registry.recipes import jpegdraft

from ..conftest import LABELS, write_imagenet_manifest

WNIDS = (LABELS / "caffe_synsets.txt").read_text().split()
TRUTH = dict(line.split() for line in (LABELS / "caffe_val.txt").read_text().splitlines())


def count_opens(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each image opened from now on, in process: "open" by Pillow, or "straight" when a
    plain JPEG is decoded by libjpeg without one (recipes/jpegdraft.py)."""
    opened: list[str] = []
    real_open, real_decode = Image.open, jpegdraft.decode

    def pillow_open(*args, **kwargs):
        opened.append("open")
        return real_open(*args, **kwargs)

    def straight(*args):
        got = real_decode(*args)
        if got is not None:
            opened.append("straight")
        return got

    monkeypatch.setattr(Image, "open", pillow_open)
    monkeypatch.setattr(jpegdraft, "decode", straight)
    return opened

def registry(root: Path, synth, recipe: str, params: str) -> Registry:
    if recipe == "webdataset" and "prefix" not in params:  # as the shipped manifests name it
        params = f'{params}, prefix: "imagenet-{{split}}"'.lstrip(", ")
    write_imagenet_manifest(root, f"""
  - name: out
    recipe: {recipe}
    inputs: {{images: {"val" if "split: val" in params else "train"}, labels: labels}}
    params: {{{params}}}
""")
    reg = Registry.open(str(root))
    if "split: val" in params:
        reg.set_source("val", synth["imagenet-val"])
    else:
        reg.set_source("train", synth["imagenet-train"])
    return reg
