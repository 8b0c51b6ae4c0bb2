"""A small project of real photos for the report tests: five classes of crops of the
scikit-image photos (tests/fixtures/real/photos), one file that is no image, a card whose
fields hold HTML, a stratified split, the split as shards of every format, and one job
run that read the split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from dataset_registry import Registry

from ..conftest import run_cli, write_manifest
from ..realkit import PHOTOS

# class -> (photo, crops): five classes of different sizes, JPEG and PNG files
CLASSES = {"astronaut": ("astronaut.png", 8), "camera": ("camera.png", 7),
           "chelsea": ("chelsea.png", 6), "coffee": ("coffee.png", 5),
           "rocket": ("rocket.jpg", 4)}
BROKEN = "rocket/broken.jpg"  # not an image: skipped (on_error: skip)
LICENSE = "CC0 <public domain> & friends"
HOSTILE = "<script>alert('card')</script>"
DATASETS = ("photos-split", "photos-wds", "photos-rec", "photos-tfr", "photos-tiny")

MANIFEST = f"""
sources:
  - name: photos
    layout: image-folder
    license: "{LICENSE}"
    homepage: https://scikit-image.org/docs/stable/api/skimage.data.html
    citation: "van der Walt et al., scikit-image: image processing in Python, PeerJ (2014)"
datasets:
  - name: photos-split
    recipe: sample
    description: five classes of real photos, a seeded 75/25 split
    inputs: {{images: photos}}
    params: {{seed: 0, splits: {{train: 0.75, val: 0.25}}, on_error: skip}}
    license: "{LICENSE}"
    meta: {{note: "{HOSTILE}", crops: 30}}
  - name: photos-wds
    recipe: webdataset
    inputs: {{images: photos-split}}
    params: {{split: train, shard_count: 3}}
  - name: photos-rec
    recipe: recordio
    inputs: {{images: photos-split}}
    params: {{split: train}}
  - name: photos-tfr
    recipe: tfrecord
    inputs: {{images: photos-split}}
    params: {{split: train, shards: 2, label_offset: 0}}
  - name: photos-tiny
    recipe: downscale
    inputs: {{train: photos-split, val: photos-split}}
    params: {{width: 16, height: 16}}
"""

JOB = """
jobs:
  - name: photos-train
    datasets: {train: photos-split}
    templates: {train: job.yaml.tmpl}
    image: trainer:1
    volume: {claim: data, store: /data/registry}
"""
POD = """apiVersion: v1
kind: Pod
metadata:
  name: ${job.name}
spec:
  restartPolicy: Never
  containers:
    - name: train
      image: ${job.image}
      command: [sh, -c, "ls ${data.train.path}"]
"""


def write_photos(folder: Path) -> Path:
    """`<class>/<photo>-<i>.(png|jpg)`: crops of each class's photo at 96x72, plus BROKEN."""
    for cls, (photo, crops) in CLASSES.items():
        (folder / cls).mkdir(parents=True, exist_ok=True)
        with Image.open(PHOTOS / photo) as im:
            rgb = im.convert("RGB")
        w, h = rgb.size
        for i in range(crops):
            side = min(w, h) * (10 - i) // 10
            left, top = (w - side) * i // max(crops - 1, 1), (h - side) // 2
            crop = rgb.crop((left, top, left + side, top + side * 3 // 4)).resize((96, 72))
            ext = "png" if photo.endswith(".png") else "jpg"
            crop.save(folder / cls / f"{cls}-{i}.{ext}", quality=90)
    (folder / BROKEN).write_bytes(b"not a jpeg at all")
    return folder


def make_project(root: Path, **where: Any) -> Registry:
    """The project at `root`, its source set; `where`: Registry.open's (store=...)."""
    write_manifest(root, MANIFEST)
    write_manifest(root, JOB, name="job.yaml")
    (root / "manifests" / "job.yaml.tmpl").write_text(POD)
    reg = Registry.open(str(root), **where)
    reg.set_source("photos", str(write_photos(root / "photos")))
    return reg


def built_photos(root: Path, names: tuple[str, ...] = DATASETS) -> Registry:
    """`make_project`, the datasets `names` built (one worker), and one run of the job,
    rendered by the CLI in a fresh process (as a user does)."""
    reg = make_project(root)
    for name in names:
        reg.resolve(name, jobs=1)
    proc = run_cli("job", "render", "photos-train", cwd=root)
    assert proc.returncode == 0, proc.stderr
    return reg
