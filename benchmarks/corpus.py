"""Benchmark corpora: ImageNet-shaped tars built from a pool of synthetic photos.

Rendering a photo-like 500x375 image costs ~30 ms, so a large corpus reuses a
pool of distinct images under distinct member names. Decoding does not cache
anything between members, so reuse does not flatter any measurement; the
corpus's mean member size is printed with every figure.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

from dataset_registry.domains.imagenet.synth import SynthSpec, _Image, _rendered, wnids

# The ImageNet label files ship inside the ImageNet plugin; a manifest names them by package
# (as the shipped manifests do), so a benchmark's manifest works wherever its root is.
LABELS = "pkg:dataset_registry.domains.imagenet/data/labels"


def write_imagenet_manifest(root: Path, datasets: str) -> None:
    """`<root>/manifests/bench.yaml`: sources `train` and `val` (ImageNet layouts), the file
    `labels` (the shipped label folder), and the given `datasets:` entries."""
    (root / "manifests").mkdir(parents=True, exist_ok=True)
    (root / "manifests" / "bench.yaml").write_text(f"""
sources:
  - {{name: train, layout: imagenet-train}}
  - {{name: val, layout: imagenet-val}}
files:
  - {{name: labels, path: "{LABELS}"}}
datasets:
{datasets.lstrip(chr(10))}""")


def pool(distinct: int, width: int, height: int, jobs: int, quality: int = 90) -> list[bytes]:
    """`distinct` photo-like RGB JPEGs of about width x height, class-dependent content."""
    spec = SynthSpec(width=width, height=height, quality=quality)
    images = [_Image(f"p{i}", i % 1000, i, "val") for i in range(distinct)]
    return [data for _, data in _rendered(images, spec, jobs)]


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 0, 0o644
    return info


def write_val_tar(path: str, images: list[bytes], count: int) -> str:
    """`count` members ILSVRC2012_val_%08d.JPEG (count <= 50,000), cycling through `images`."""
    with tarfile.open(path, "w") as tf:
        for i in range(count):
            data = images[i % len(images)]
            tf.addfile(_info(f"ILSVRC2012_val_{i + 1:08d}.JPEG", len(data)), io.BytesIO(data))
    return path


def write_train_tar(path: str, images: list[bytes], classes: int, per_class: int) -> str:
    """A tar of `classes` per-class tars of `per_class` members each, real WNIDs."""

    def members(wnid: str, offset: int) -> Iterator[tuple[str, bytes]]:
        for j in range(per_class):
            yield f"{wnid}_{j}.JPEG", images[(offset + j) % len(images)]

    with tarfile.open(path, "w") as outer:
        for k, wnid in enumerate(wnids()[:classes]):
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w") as inner:
                for name, data in members(wnid, k * per_class):
                    inner.addfile(_info(name, len(data)), io.BytesIO(data))
            outer.addfile(_info(f"{wnid}.tar", buf.tell()), io.BytesIO(buf.getvalue()))
    return path


def mean_kib(images: list[bytes]) -> float:
    return sum(map(len, images)) / len(images) / 1024


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
