"""Shared by the shard recipe tests: a registry over one synthetic source, the labels."""

from pathlib import Path

from dataset_registry import Registry

from ..conftest import LABELS, write_imagenet_manifest

WNIDS = (LABELS / "caffe_synsets.txt").read_text().split()
TRUTH = dict(line.split() for line in (LABELS / "caffe_val.txt").read_text().splitlines())

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
