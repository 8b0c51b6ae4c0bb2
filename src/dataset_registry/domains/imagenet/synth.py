"""A synthetic ImageNet, byte-reproducible, for demos, tests and benchmarks.

ImageNet cannot be downloaded without an account, so `registry synth imagenet DIR`
writes stand-ins with the real names and shapes:

- `ILSVRC2012_img_val.tar`: flat `ILSVRC2012_val_%08d.JPEG`, image i drawn for its real
  class from caffe `val.txt`;
- `ILSVRC2012_img_train.tar`: a tar of per-class `<wnid>.tar` (real WNIDs);
- `kaggle/`: the Kaggle `ILSVRC/Data/CLS-LOC/` layout with `LOC_*` files.

Each class has its own colour, stripe angle and frequency, so a small network can
learn it. The real hazards are there: the PNG named `n02105855_2933.JPEG`, CMYK
JPEGs under the real CMYK names, the 4-channel `ILSVRC2012_val_00019877.JPEG`,
grayscale images, and a few images thousands of pixels wide. Every tar carries a
PAX header, every folder a marker file, and every JPEG a comment saying it is
synthetic. Same arguments, same bytes, whatever `jobs` is.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib import resources

from ...core.atomic import atomic_path
from ...core.filewrites import write_all
from ...sources.location import SYNTHETIC_MARKER
from ...sources.tarindex import SYNTHETIC_PAX_KEY
from .labels import CMYK_TRAIN, CMYK_VAL, PNG_IMPOSTOR

LARGE_VAL = (17, 4242, 33333)  # val images drawn several thousand pixels wide
MTIME = 1335225600  # 2012-04-24, the ILSVRC2012 release; fixed so tars are reproducible
COMMENT = b"dataset-registry synthetic ImageNet: not real data"


@dataclass(frozen=True)
class SynthSpec:
    val_images: int = 50_000
    train_classes: int = 10
    train_per_class: int = 10
    width: int = 64
    height: int = 48
    seed: int = 0
    kaggle: bool = True
    quality: int = 90
    wnids: tuple[str, ...] = ()  # train classes to include; empty: see train_classes


@dataclass(frozen=True)
class _Image:
    name: str
    label: int  # sorted0
    index: int  # position in its split, for the per-image random stream
    split: str
    kind: str = "rgb"  # rgb | gray | cmyk | png | large


def reference_data(name: str) -> str:
    return resources.files("dataset_registry.domains.imagenet").joinpath("data", "labels",
                                                                        name).read_text()


def wnids() -> list[str]:
    return reference_data("caffe_synsets.txt").split()


def val_images(spec: SynthSpec) -> list[_Image]:
    lines = reference_data("caffe_val.txt").splitlines()[: spec.val_images]
    out = []
    for i, line in enumerate(lines):
        name, label = line.split()
        number = i + 1
        kind = "cmyk" if name == CMYK_VAL else "large" if number in LARGE_VAL else \
            "gray" if number % 97 == 0 else "rgb"
        out.append(_Image(name, int(label), i, "val", kind))
    return out


def train_classes(spec: SynthSpec) -> list[str]:
    """`spec.wnids` if given; else the hazard classes first (K >= 23 holds every hazard),
    then sorted order; K = train_classes."""
    if spec.wnids:
        unknown = sorted(set(spec.wnids) - set(wnids()))
        if unknown:
            from ...errors import BadInputError

            raise BadInputError(f"synth: unknown WNIDs {', '.join(unknown[:5])}")
        return sorted(set(spec.wnids))
    hazard = sorted({n.split("_")[0] for n in [PNG_IMPOSTOR, *CMYK_TRAIN]})
    rest = [w for w in wnids() if w not in hazard]
    return sorted((hazard + rest)[: spec.train_classes])


def train_images(spec: SynthSpec) -> dict[str, list[_Image]]:
    label_of = {w: i for i, w in enumerate(wnids())}
    hazards = {n.split("_")[0]: [] for n in [PNG_IMPOSTOR, *CMYK_TRAIN]}
    hazards[PNG_IMPOSTOR.split("_")[0]].append((PNG_IMPOSTOR, "png"))
    for n in CMYK_TRAIN:
        hazards[n.split("_")[0]].append((f"{n}.JPEG", "cmyk"))
    out: dict[str, list[_Image]] = {}
    index = 0
    for wnid in train_classes(spec):
        names = [(f"{wnid}_{100 + 37 * j}.JPEG", "gray" if j % 13 == 5 else "rgb")
                 for j in range(spec.train_per_class)] + hazards.get(wnid, [])
        images = []
        for name, kind in sorted(names):
            images.append(_Image(name, label_of[wnid], index, "train", kind))
            index += 1
        out[wnid] = images
    return out


def render(image: _Image, spec: SynthSpec) -> bytes:
    """The encoded bytes of one synthetic image (deterministic in spec and image).

    Photo-like on purpose: smooth fields, stripes and solid shapes with edges,
    mild grain. Pure pixel noise would make entropy decoding dominate and give
    decode-speed figures unlike real photos.
    """
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng([spec.seed, 0 if image.split == "val" else 1, image.index])
    cls = np.random.default_rng([7919, image.label])  # the class's look, shared by its images
    base = cls.uniform(40, 215, size=3).astype(np.float32)
    angle, freq = cls.uniform(0, np.pi), cls.uniform(0.03, 0.25)
    if image.kind == "large":
        w, h = 3000 + 200 * (image.index % 5), 2000
    else:
        w = max(8, int(spec.width * rng.uniform(0.8, 1.25)))
        h = max(8, int(spec.height * rng.uniform(0.8, 1.25)))
    unit = min(w, h) / 375  # stripes and shapes scale with the image
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    wave = np.sin((x * np.cos(angle) + y * np.sin(angle)) * (freq / unit)
                  + rng.uniform(0, 2 * np.pi)).astype(np.float32)
    cell = max(2, int(24 * unit))
    coarse = rng.normal(128, 40, size=(h // cell + 2, w // cell + 2, 3))
    field = np.asarray(Image.fromarray(np.clip(coarse, 0, 255).astype(np.uint8))
                       .resize((w, h), Image.Resampling.BICUBIC), np.float32) - 128
    grain = rng.standard_normal((h, w, 3), dtype=np.float32) * 3
    pixels = base + (wave * 35)[..., None] + field + grain
    rgb = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(rgb)
    for _ in range(int(rng.integers(3, 8))):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(10, 90) * unit
        colour = cls.uniform(0, 255, 3) if rng.random() < 0.5 else rng.uniform(0, 255, 3)
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape([cx - r, cy - r / 2, cx + r, cy + r], fill=tuple(int(c) for c in colour))
    buf = io.BytesIO()
    if image.kind == "png":
        rgb.save(buf, "PNG")
    elif image.kind == "gray":
        rgb.convert("L").save(buf, "JPEG", quality=spec.quality, comment=COMMENT)
    elif image.kind == "cmyk":
        rgb.convert("CMYK").save(buf, "JPEG", quality=spec.quality, comment=COMMENT)
    else:
        rgb.save(buf, "JPEG", quality=spec.quality, comment=COMMENT)
    return buf.getvalue()


def _render_many(args: tuple[list[_Image], SynthSpec]) -> list[bytes]:
    images, spec = args
    return [render(im, spec) for im in images]


def _rendered(images: list[_Image], spec: SynthSpec, jobs: int) -> Iterator[tuple[_Image, bytes]]:
    chunks = [images[i:i + 256] for i in range(0, len(images), 256)]
    if jobs <= 1 or len(chunks) <= 1:
        for chunk in chunks:
            yield from zip(chunk, _render_many((chunk, spec)), strict=True)
        return
    from concurrent.futures import ProcessPoolExecutor

    from ...core.processes import shut_down, watch_coordinator, worker_context

    # Its workers watch this process, as every pool's do: killed (SIGKILL, or SIGTERM at
    # its default), it would leave them blocked for ever sending back a rendered chunk.
    pool = ProcessPoolExecutor(jobs, mp_context=worker_context(), initializer=watch_coordinator,
                               initargs=(os.getpid(),))
    try:
        for chunk, data in zip(chunks, pool.map(_render_many, [(c, spec) for c in chunks]),
                               strict=True):
            yield from zip(chunk, data, strict=True)
    finally:  # (interrupted: the chunks not begun are dropped)
        shut_down(pool)


def _tar_info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, MTIME, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _write_tar(path: str, members: Iterable[tuple[str, bytes]], spec: SynthSpec) -> None:
    header = {SYNTHETIC_PAX_KEY: "1", "DATASET_REGISTRY.spec": repr(spec)}
    with atomic_path(path) as tmp, \
            tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT, pax_headers=header) as tf:
        for name, data in members:
            tf.addfile(_tar_info(name, len(data)), io.BytesIO(data))


def _class_tar(images: list[tuple[_Image, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for im, data in images:
            tf.addfile(_tar_info(im.name, len(data)), io.BytesIO(data))
    return buf.getvalue()


def image_count(spec: SynthSpec) -> int:
    """How many images `synthesize` renders (what its `progress` adds up to)."""
    return len(val_images(spec)) + sum(len(images) for images in train_images(spec).values())


def synthesize(out_dir: str, spec: SynthSpec, *, jobs: int = 1,
               progress: Callable[[int], None] | None = None) -> dict[str, str]:
    """Write the synthetic ImageNet under `out_dir`; return {layout: location} of what
    was written (the Kaggle layout only with `spec.kaggle`). `progress(n)`: n more
    images written (`image_count(spec)` in all)."""
    val = val_images(spec)
    train = train_images(spec)  # checks spec.wnids: refused before anything is written
    os.makedirs(out_dir, exist_ok=True)
    kaggle = os.path.join(out_dir, "kaggle")
    loc = os.path.join(kaggle, "ILSVRC", "Data", "CLS-LOC")
    if spec.kaggle:
        for wnid in train:
            os.makedirs(os.path.join(loc, "train", wnid), exist_ok=True)
        os.makedirs(os.path.join(loc, "val"), exist_ok=True)

    def val_members() -> Iterator[tuple[str, bytes]]:
        for im, data in _rendered(val, spec, jobs):
            if spec.kaggle:
                _write_file(os.path.join(loc, "val", im.name), data)
            if progress:
                progress(1)
            yield im.name, data

    _write_tar(os.path.join(out_dir, "ILSVRC2012_img_val.tar"), val_members(), spec)

    flat = [im for images in train.values() for im in images]
    rendered = dict(zip((im.name for im in flat), (d for _, d in _rendered(flat, spec, jobs)),
                        strict=True))

    def train_members() -> Iterator[tuple[str, bytes]]:
        for wnid, images in train.items():
            pairs = [(im, rendered[im.name]) for im in images]
            if spec.kaggle:
                for im, data in pairs:
                    _write_file(os.path.join(loc, "train", wnid, im.name), data)
            if progress:
                progress(len(pairs))
            yield f"{wnid}.tar", _class_tar(pairs)

    _write_tar(os.path.join(out_dir, "ILSVRC2012_img_train.tar"), train_members(), spec)
    made = {"imagenet-val": os.path.join(out_dir, "ILSVRC2012_img_val.tar"),
            "imagenet-train": os.path.join(out_dir, "ILSVRC2012_img_train.tar")}
    if spec.kaggle:
        _write_kaggle_meta(kaggle, val, spec)
        made["kaggle-cls-loc"] = kaggle
    return made


def _write_kaggle_meta(kaggle: str, val: list[_Image], spec: SynthSpec) -> None:
    names = wnids()
    _write_file(os.path.join(kaggle, "LOC_synset_mapping.txt"),
                reference_data("caffe_synset_words.txt").encode())
    rows = ["ImageId,PredictionString"]
    for im in val:
        rows.append(f"{im.name.removesuffix('.JPEG')},{names[im.label]} 0 0 "
                    f"{spec.width - 1} {spec.height - 1} ")
    _write_file(os.path.join(kaggle, "LOC_val_solution.csv"), ("\n".join(rows) + "\n").encode())
    _write_file(os.path.join(kaggle, SYNTHETIC_MARKER),
                (COMMENT.decode() + f"\n{spec!r}\n").encode())


def _write_file(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        write_all(f, data)
