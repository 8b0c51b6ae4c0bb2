"""Latency of the no-work paths: resolving built variants and re-checking unchanged sources.

    python benchmarks/bench_resolve.py [--runs 9] [--val-images 50000] [--smoke]

Builds a throwaway registry over the shipped manifests plus one 50,000-file
variant, on a synthetic val set, then measures (median of --runs):

1. whole-process `registry resolve` of a built variant, for a 1-file and a
   50,000-file variant side by side (the ratio shows size independence);
2. re-checking the unchanged val tar in process (stat, compare with the cached
   signature, reuse the fingerprint: what every resolve does), and the
   whole-process `registry source check` for reference;
3. re-checking the same 50,000 images as an unchanged extracted folder.

--smoke runs every measurement once on 100 images (seconds): it checks that the script
works, so its exit status ignores the limits.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXTRA = """
sources:
  - {name: bench-val-folder, layout: imagenet-val}
datasets:
  - {name: bench-val-all, recipe: select, inputs: {images: imagenet2012-val},
     params: {validate_images: false}}
"""


SMOKE = {"runs": 1, "val_images": 100}


def median_seconds(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--val-images", type=int, default=50_000)
    ap.add_argument("--smoke", action="store_true", help="every measurement, tiny and once")
    args = ap.parse_args()
    if args.smoke:
        vars(args).update(SMOKE)

    work = Path(tempfile.mkdtemp(prefix="bench-resolve-"))
    try:
        return measure(work, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure(work: Path, args: argparse.Namespace) -> int:
    from dataset_registry import Registry
    from dataset_registry.domains.imagenet.synth import SynthSpec, synthesize

    manifests = work / "manifests"
    # the repo's manifests/ is a link to the plugin's folder: copy what it points at (its
    # label files are named by package, `pkg:`, so nothing else needs to come along)
    shutil.copytree(REPO / "manifests", manifests)
    (manifests / "bench.yaml").write_text(EXTRA)

    print(f"synthesizing {args.val_images} val images in {work} ...", flush=True)
    made = synthesize(str(work / "synth"), SynthSpec(val_images=args.val_images, width=32,
                                                     height=24, kaggle=False, train_classes=1,
                                                     train_per_class=1), jobs=os.cpu_count() or 1)
    folder = work / "val-folder"
    with tarfile.open(made["imagenet-val"]) as tf:
        tf.extractall(folder, filter="data")

    reg = Registry.open(str(work))
    reg.set_source("imagenet2012-val", made["imagenet-val"])
    reg.set_source("bench-val-folder", str(folder))
    small, big = "imagenet-calibration-first.1", "bench-val-all"
    for name in (small, big):
        ds = reg.resolve(name)
        print(f"built {name}: {ds.marker.files} files")
    reg.save_key_cache()

    def cli_resolve(name: str) -> None:
        subprocess.run([sys.executable, "-m", "dataset_registry.cli", "resolve", name],
                       cwd=work, check=True, stdout=subprocess.DEVNULL)

    from dataset_registry.sources.index import check_source

    cache_dir = os.path.join(reg.state_dir, "cache")
    locations = reg.resolver.locations.load()

    def check(name: str) -> None:
        # What every resolve and `source check` does first: stat, compare, reuse the fingerprint.
        check_source(reg.manifests.get(name), locations[name], cache_dir)

    def cli_check(name: str) -> None:
        subprocess.run([sys.executable, "-m", "dataset_registry.cli", "source", "check", name],
                       cwd=work, check=True, stdout=subprocess.DEVNULL)

    cli_resolve(small)  # warm the OS caches once
    t_small = median_seconds(lambda: cli_resolve(small), args.runs)
    t_big = median_seconds(lambda: cli_resolve(big), args.runs)
    t_tar = median_seconds(lambda: check("imagenet2012-val"), args.runs)
    t_dir = median_seconds(lambda: check("bench-val-folder"), args.runs)
    t_cli_tar = median_seconds(lambda: cli_check("imagenet2012-val"), args.runs)

    rows = [
        (f"registry resolve, built, {reg.built(small).marker.files} files", t_small, 0.3),
        (f"registry resolve, built, {reg.built(big).marker.files} files", t_big, 0.3),
        ("re-check unchanged val tar", t_tar, 0.05),
        (f"re-check unchanged folder of {args.val_images} files", t_dir, 1.0),
    ]
    print(f"\nmedian of {args.runs} runs, {os.cpu_count()} cores")
    print(f"{'what':48s} {'seconds':>9s} {'limit':>7s}  ok")
    for what, seconds, limit in rows:
        print(f"{what:48s} {seconds:9.4f} {limit:7.2f}  {'yes' if seconds <= limit else 'NO'}")
    ratio = f"ratio: {reg.built(big).marker.files:,}-file / " \
            f"{reg.built(small).marker.files:,}-file resolve"
    print(f"{ratio:48s} {t_big / t_small:9.2f}")
    print(f"{'(whole-process `registry source check`, tar)':48s} {t_cli_tar:9.4f}")
    return 0 if args.smoke or all(s <= limit for _, s, limit in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
