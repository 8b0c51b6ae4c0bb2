"""A generic synthetic source: N small images in K class folders (image-folder layout),
as a folder or as a tar, byte-for-byte the same on every run and machine.

    <class-k>/img-<i>.png|.jpg        PNG and JPEG alternate; i runs over all classes

Pixels come from the image's index alone (no RNG state, no clock); the tar has fixed
owners, modes and times, members in sorted order. `open_project` writes a manifest
around such a source and opens a `Registry` on it.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

BROKEN_IMAGE = b"\x89PNG\r\n\x1a\n not really a PNG"
"""Bytes named like an image that no decoder reads (for the on_error checks)."""


def image_bytes(i: int, width: int = 12, height: int = 10) -> bytes:
    """Image `i`: a PNG for even i, a JPEG for odd i, its pixels a function of i."""
    from PIL import Image

    img = Image.new("RGB", (width, height))
    img.putdata([((x * 20 + i * 37) % 256, (y * 25 + i * 11) % 256, (i * 53) % 256)
                 for y in range(height) for x in range(width)])
    buf = io.BytesIO()
    if i % 2:
        img.save(buf, "JPEG", quality=90)
    else:
        img.save(buf, "PNG")
    return buf.getvalue()


def synthetic_images(n: int = 24, classes: int = 3) -> dict[str, bytes]:
    """{member path: bytes}: image i in class folder `class-{i % classes}`."""
    if not (0 < classes <= n):
        raise ValueError(f"{n} images cannot fill {classes} classes")
    return {f"class-{i % classes}/img-{i:04d}.{'jpg' if i % 2 else 'png'}": image_bytes(i)
            for i in range(n)}


def write_files(folder: Path, files: Mapping[str, bytes]) -> Path:
    folder = Path(folder)
    for name, data in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return folder


def write_image_folder(folder: Path, n: int = 24, classes: int = 3,
                       extra: Mapping[str, bytes] | None = None) -> Path:
    """The synthetic images as class folders under `folder` (plus `extra` files)."""
    return write_files(folder, {**synthetic_images(n, classes), **(extra or {})})


def write_tar(path: Path, files: Mapping[str, bytes]) -> Path:
    """A deterministic tar of `files` (sorted, owner 0, mode 0644, mtime 0)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(files[name]), 0o644, 0
            tf.addfile(info, io.BytesIO(files[name]))
    return path


def write_image_tar(path: Path, n: int = 24, classes: int = 3,
                    extra: Mapping[str, bytes] | None = None) -> Path:
    """The same members as `write_image_folder`, as one tar."""
    return write_tar(path, {**synthetic_images(n, classes), **(extra or {})})


def folder_files(folder: Path) -> dict[str, bytes]:
    """Every file under `folder`, by '/'-separated relative path."""
    folder = Path(folder)
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def open_project(root: Path, sources: Mapping[str, str | Path],
                 datasets: list[dict[str, Any]] | None = None, layout: str = "image-folder",
                 options: Mapping[str, Any] | None = None, **registry: Any) -> Any:
    """A `Registry` at `root` whose manifest declares each source (name -> location, all
    with `layout` and `options`) and the given dataset entries (dicts as in a manifest),
    with every source's location set."""
    from .. import Registry

    entries = [{"name": name, "layout": layout, **({"options": dict(options)} if options
                                                    else {})} for name in sources]
    folder = Path(root) / "manifests"
    folder.mkdir(parents=True, exist_ok=True)
    # JSON is YAML: no quoting rules to get wrong
    (folder / "test.yaml").write_text(json.dumps({"sources": entries,
                                                  "datasets": list(datasets or [])}, indent=1))
    reg = Registry.open(str(root), **registry)
    for name, location in sources.items():
        reg.set_source(name, str(location))
    return reg
