"""A manifest with one dataset per recipe (and one dataset read by another), over the
small synthetic source: what the executor and store suites build and compare."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dataset_registry import Registry

from .conftest import write_imagenet_manifest

EVERY_RECIPE = """
  - name: val-first
    recipe: select
    inputs: {images: val}
    params: {first: 40}
  - name: cal
    recipe: calibration
    inputs: {images: val-first, labels: labels}
  - name: tiny
    recipe: downscale
    inputs: {train: train, val: val, labels: labels}
    params: {width: 8, height: 6, require_all_classes: false}
  - name: tiny-folders
    recipe: downscale
    inputs: {train: train, val: val, labels: labels}
    params: {width: 8, height: 8, color: gray, format: folders, require_all_classes: false}
  - name: byclass
    recipe: byclass
    inputs: {images: val, labels: labels}
    params: {split: val, require_all_classes: false}
  - name: rec
    recipe: recordio
    inputs: {images: train, labels: labels}
    params: {require_all_classes: false}
  - name: wds
    recipe: webdataset
    inputs: {images: val, labels: labels}
    params: {split: val, require_all_classes: false, shard_count: 128}
  - name: wds-regions  # one shard of 600 samples, written by three tasks (recipes/regions.py)
    recipe: webdataset
    inputs: {images: val, labels: labels}
    params: {split: val, require_all_classes: false}
  - name: tfr
    recipe: tfrecord
    inputs: {images: train, labels: labels}
    params: {require_all_classes: false, shards: 4}
"""
# built in this order: wds-regions first, while no verdict of the val images is known (the
# image checks of any build before it would be, and its shard would be one task)
NAMES = ("wds-regions", "val-first", "cal", "tiny", "tiny-folders", "byclass", "rec", "wds",
         "tfr")


def every_recipe(root: Path, train: str, val: str, **kwargs: Any) -> Registry:
    """A registry at `root` over sources `train` and `val` (paths or s3:// URLs)."""
    write_imagenet_manifest(root, EVERY_RECIPE)
    reg = Registry.open(str(root), **kwargs)
    reg.set_source("train", train)
    reg.set_source("val", val)
    return reg


def build_all(reg: Registry, **resolve: Any) -> dict[str, str]:
    """name -> content digest of every dataset, built with `resolve`'s executor or jobs."""
    return {name: reg.resolve(name, **resolve).digest for name in NAMES}
