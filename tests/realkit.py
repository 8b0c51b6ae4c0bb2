"""Real data nobody here made (tests/fixtures/real/, see its SOURCES.md), written out in
the shapes users bring: class folders, a tar plus a labels table."""

from __future__ import annotations

import csv
import gzip
import io
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

REAL = Path(__file__).parent / "fixtures" / "real"
PHOTOS = REAL / "photos"


def digits() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 UCI handwritten digits: uint8 images (N x 8 x 8, 0..255) and labels."""
    with gzip.open(REAL / "digits.csv.gz", "rt") as f:
        rows = np.loadtxt(f, delimiter=",", dtype=np.int64)
    pixels = (rows[:, :64] * 255 // 16).astype(np.uint8).reshape(-1, 8, 8)
    return pixels, rows[:, 64]


def png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buf, format="PNG")
    return buf.getvalue()


def digit_name(i: int) -> str:
    return f"digit-{i:04d}.png"


def write_digit_folders(root: Path) -> Path:
    """`<label>/digit-NNNN.png`, as torchvision's ImageFolder reads them."""
    images, labels = digits()
    for i, (pixels, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / digit_name(i)).write_bytes(png(pixels))
    return root


def write_digit_tar(path: Path, table: str = "metadata.csv") -> Path:
    """A flat tar of `images/digit-NNNN.png` plus a CSV (file_name, label, writer_row)."""
    images, labels = digits()
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    writer.writerow(["file_name", "label", "row"])
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for i, (pixels, label) in enumerate(zip(images, labels, strict=True)):
            _add(tar, f"images/{digit_name(i)}", png(pixels))
            writer.writerow([f"images/{digit_name(i)}", int(label), i])
        _add(tar, table, rows.getvalue().encode())
    return path


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime = len(data), 0
    tar.addfile(info, io.BytesIO(data))


def photo_tiles(grid: int = 3) -> dict[str, Image.Image]:
    """The six real photos cut into grid x grid tiles, as RGB: `<photo>-<column><row>`
    (54 distinct real images at 3 x 3, from 142 x 142 to 470 x 470 pixels)."""
    tiles = {}
    for path in sorted(PHOTOS.iterdir()):
        with Image.open(path) as opened:
            photo = opened.convert("RGB")
        w, h = photo.size
        for i in range(grid):
            for j in range(grid):
                box = (i * w // grid, j * h // grid, (i + 1) * w // grid, (j + 1) * h // grid)
                tiles[f"{path.stem}-{i}{j}"] = photo.crop(box)
    return tiles


def encode(image: Image.Image, fmt: str, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return buf.getvalue()


def near_copy(data: bytes, scale: float, quality: int = 70) -> bytes:
    """`data` decoded, resized by `scale` and re-encoded as JPEG at `quality`: a copy no
    byte comparison finds (what a re-upload or a thumbnail pipeline makes)."""
    with Image.open(io.BytesIO(data)) as opened:
        image = opened.convert("RGB")
    size = (round(image.width * scale), round(image.height * scale))
    return encode(image.resize(size, Image.Resampling.LANCZOS), "JPEG", quality)
