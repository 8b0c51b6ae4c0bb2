"""`registry demo`: the main job on the embedded defaults, end to end.

Synthesizes an ImageNet-shaped val set (real file names and labels, synthetic
pixels), points the `imagenet2012-val` source at it, resolves the calibration
variants into the local store, and answers provenance questions in SQL.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ...api import Registry
from .synth import SynthSpec, synthesize

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


def run_demo(root: str, *, val_images: int = 50_000, jobs: int | None = None) -> int:
    reg = Registry.open(root)
    data = os.path.join(reg.state_dir, "synthetic-imagenet")
    spec = SynthSpec(val_images=val_images, train_classes=10, train_per_class=10, kaggle=False)
    stamp = os.path.join(data, "spec.txt")
    tar = os.path.join(data, "ILSVRC2012_img_val.tar")
    if not (os.path.exists(stamp) and Path(stamp).read_text() == repr(spec)):
        print(f"1. synthesizing {val_images} ImageNet-shaped val images into {data} ...")
        start = time.perf_counter()
        synthesize(data, spec, jobs=jobs or os.cpu_count() or 1)
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
    variants = [v for v in DEMO_VARIANTS if "min" in v or val_images == 50_000]
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
    print("\nNext: registry list; registry lineage imagenet-min-calibration-all.500; "
          "registry verify")
    return 0
