"""`registry demo`: the main job on the embedded defaults, end to end.

Synthesizes an ImageNet-shaped val set (real file names and labels, synthetic
pixels), points the `imagenet2012-val` source at it, resolves the calibration
variants into the local store, and answers provenance questions in SQL.

It runs in the project the --root/--manifests/--store/--catalog options name. A
folder without a manifests folder (outside a checkout), and none named, gets the
ImageNet example project written into `registry-demo/` first (`registry init
--example imagenet`), and the demo runs there. Everything it needs is checked
before the synthesis (minutes at 50,000 images).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ...api import Registry
from ...config import locations
from ...core.progress import bar
from ...errors import BadInputError
from .synth import SynthSpec, image_count, synthesize

DEMO_PROJECT = "registry-demo"  # where the example project goes when there is none
MIN_IMAGES = 500  # the "min" set takes the first 500 val images

DEMO_VARIANTS = (
    "imagenet-calibration-first.500",
    "imagenet-calibration-mlperf.option1",
    "imagenet-calibration-mlperf.option2",
    "imagenet-calibration-first.1.dup.5",
    "imagenet-min-calibration-all.500",
)

QUERIES = {
    "Which artifacts hold ILSVRC2012_val_00000293.JPEG, and under which label?": """
        SELECT a.name, f.path, f.label, a.key
        FROM files f JOIN artifacts a USING (key)
        WHERE f.member = 'ILSVRC2012_val_00000293.JPEG' ORDER BY a.name""",
    "Same content, different derivations (equal digests):": """
        SELECT digest, list(name ORDER BY name) AS datasets
        FROM artifacts GROUP BY digest HAVING count(*) > 1""",
    "Everything built from each source fingerprint:": """
        SELECT s.name AS source, s.fingerprint, s.synthetic, count(DISTINCT f.key) AS artifacts,
               count(*) AS files
        FROM sources s JOIN files f ON f.source = s.fingerprint GROUP BY ALL""",
}


def demo_root(root: str, manifests: str | None) -> str:
    """The project folder the demo runs in: `root`, or `root/registry-demo/` with the
    ImageNet example written into it (once) when `root` has no manifests folder and
    none is named (argument or DATASET_REGISTRY_MANIFESTS). A named one that does not
    exist is a BadInputError."""
    where = locations(root, manifests=manifests)
    if os.path.isdir(where.manifests):
        return root
    if manifests or os.environ.get("DATASET_REGISTRY_MANIFESTS"):
        raise BadInputError(f"demo: manifests folder {where.manifests} does not exist")
    from ...init import init_project

    project = os.path.join(where.root, DEMO_PROJECT)
    if os.path.exists(os.path.join(project, "registry.toml")):
        print(f"0. no manifests folder in {where.root}: running in the example project "
              f"{project}")
    else:
        init_project(project, "imagenet")
        print(f"0. no manifests folder in {where.root}: wrote the ImageNet example project "
              f"into {project} (registry init --example imagenet); running there")
    return project


def check_val_images(val_images: int) -> None:
    if not MIN_IMAGES <= val_images <= 50_000:
        raise BadInputError(f"demo: --val-images must be between {MIN_IMAGES} and 50000 "
                            f"(the min calibration sets take the first {MIN_IMAGES})")


def check_demo(reg: Registry, val_images: int) -> list[str]:
    """The variants the demo resolves; BadInputError, before anything is synthesized, if
    the manifests lack what it needs or `val_images` is too few or too many."""
    check_val_images(val_images)
    variants = [v for v in DEMO_VARIANTS if "min" in v or val_images == 50_000]
    missing = [n for n in ("imagenet2012-val", *variants) if n not in reg.manifests.nodes]
    if missing:
        raise BadInputError(f"demo: the manifests in {reg.manifests_dir} do not define "
                            f"{', '.join(missing)}; the demo needs the ImageNet example's "
                            "(registry init --example imagenet)")
    return variants


def run_demo(reg: Registry, *, val_images: int = 50_000, jobs: int | None = None) -> int:
    variants = check_demo(reg, val_images)
    data = os.path.join(reg.state_dir, "synthetic-imagenet")
    spec = SynthSpec(val_images=val_images, train_classes=10, train_per_class=10, kaggle=False)
    stamp = os.path.join(data, "spec.txt")
    tar = os.path.join(data, "ILSVRC2012_img_val.tar")
    if not (os.path.exists(stamp) and Path(stamp).read_text() == repr(spec)):
        print(f"1. synthesizing {val_images} ImageNet-shaped val images into {data} ...")
        start = time.perf_counter()
        with bar(reg.progress, "synthesizing", image_count(spec), unit="images") as advance:
            synthesize(data, spec, jobs=jobs or os.cpu_count() or 1, progress=advance)
        with open(stamp, "w") as f:
            f.write(repr(spec))
        print(f"   done in {time.perf_counter() - start:.1f} s (SYNTHETIC: real names and "
              "labels, generated pixels)")
    else:
        print(f"1. synthetic val set already at {data}")
    info = reg.set_source("imagenet2012-val", tar)
    print(f"2. source imagenet2012-val -> {tar}\n   {info.files} images, fingerprint "
          f"{info.fingerprint}")
    print("3. resolving calibration variants (built only if missing):")
    for name in variants:
        start = time.perf_counter()
        ds = reg.resolve(name, jobs=jobs)
        what = "built" if ds.built_now else "already built"
        print(f"   {name:40s} {ds.marker.files:4d} files  key {ds.key[:12]}  "
              f"{what} in {time.perf_counter() - start:.2f} s\n   {'':40s} {ds.path}")
    reg.save_key_cache()
    print("4. provenance, in SQL (registry sql \"...\"):")
    reg.sync_catalog()
    for title, sql in QUERIES.items():
        result = reg.sql(sql, sync=False)
        print(f"\n   {title}")
        print("   " + " | ".join(result.columns))
        for row in result.rows:
            print("   " + " | ".join(str(v) for v in row))
    moved = "" if os.path.samefile(reg.root, os.getcwd()) else f"cd {reg.root}; "
    print(f"\nNext: {moved}registry list; registry lineage imagenet-min-calibration-all.500; "
          "registry verify")
    return 0
