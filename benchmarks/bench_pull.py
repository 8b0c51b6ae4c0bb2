"""`registry pull` of a shard variant from an S3 bucket against a plain s3fs `get` of the
same files, side by side in one run.

    python benchmarks/bench_pull.py [--val-images 4000] [--shards 32] [--runs 3] [--smoke]

Starts moto's standalone S3 server (`python -m moto.server`, its own process) on
127.0.0.1, synthesizes a val set, builds a WebDataset variant (tar shards) into a local
store and pushes it to s3://bench/team. Then, alternating, each run:

s3fs get       one batched `S3FileSystem.get` of the artifact's objects into a fresh
               folder: the floor (what any client pays to bring the bytes over)
registry pull  `Registry.pull` (what `registry pull NAME --from URL` runs, less the
               interpreter's start) into a fresh registry: the same download, plus
               reading and checking the file table, every file's xxh3, the marker last
               and the store's rename and seal

Prints the best seconds and MB/s of each and the ratio s3fs get / registry pull (1.0:
pulling costs nothing over the download; the target is at least 0.8).

--smoke measures once on 40 images and 4 shards (seconds): it checks that the script
works, not how fast.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_s3 import moto_endpoint
from corpus import write_imagenet_manifest

SMOKE = {"val_images": 40, "shards": 4, "runs": 1}
DATASETS = """
  - name: shards
    recipe: webdataset
    inputs: {images: val, labels: labels}
    params: {split: val, require_all_classes: false, shard_count: %d}
"""
TARGET = 0.8


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--val-images", type=int, default=4000)
    ap.add_argument("--shards", type=int, default=32)
    ap.add_argument("--runs", type=int, default=3, help="repeats; the best run is shown")
    ap.add_argument("--jobs", type=int, default=2, help="workers for the one build")
    ap.add_argument("--smoke", action="store_true", help="every measurement, tiny and once")
    args = ap.parse_args()
    if args.smoke:
        vars(args).update(SMOKE)

    moto, options, port = moto_endpoint()
    import s3fs

    from dataset_registry import Registry
    from dataset_registry.domains.imagenet.synth import SynthSpec, synthesize

    cache = "s3://bench/team"
    try:
        s3fs.S3FileSystem(skip_instance_cache=True, **options).mkdir("bench")
        with tempfile.TemporaryDirectory() as tmp:
            base = Path(tmp)
            synthesize(str(base / "synth"), SynthSpec(
                val_images=args.val_images, train_classes=1, train_per_class=1, width=160,
                height=120, kaggle=False), jobs=args.jobs)
            manifest = DATASETS % args.shards
            write_imagenet_manifest(base / "a", manifest)
            a = Registry.open(str(base / "a"), storage_options=options)
            a.set_source("val", str(base / "synth" / "ILSVRC2012_img_val.tar"))
            built = a.resolve("shards", jobs=args.jobs)
            a.push(["shards"], cache)
            prefix = f"bench/team/{built.key[:2]}/{built.key}"
            total = sum(os.path.getsize(os.path.join(built.path, n))
                        for n in os.listdir(built.path))
            print(f"{args.val_images} synthetic val images 160x120 as a WebDataset variant of "
                  f"{built.marker.files} files ({total / 1e6:.1f} MB), moto server on "
                  f"127.0.0.1:{port}")
            best = {"s3fs get": float("inf"), "registry pull": float("inf")}
            for run in range(args.runs):
                for what in (("s3fs get", "registry pull") if run % 2 == 0 else
                             ("registry pull", "s3fs get")):
                    dest = base / f"{what.split()[0]}-{run}"
                    start = time.perf_counter()
                    if what == "s3fs get":
                        fs = s3fs.S3FileSystem(skip_instance_cache=True, **options)
                        found = fs.find(prefix)
                        fs.get(found, [str(dest / p[len(prefix) + 1:]) for p in found])
                    else:
                        write_imagenet_manifest(dest, manifest)
                        b = Registry.open(str(dest), storage_options=options)
                        b.set_source("val", str(base / "synth" / "ILSVRC2012_img_val.tar"))
                        start = time.perf_counter()  # from here on, what `pull` runs
                        b.pull(["shards"], cache)
                    best[what] = min(best[what], time.perf_counter() - start)
                    shutil.rmtree(dest, ignore_errors=True)
            print(f"{'what':<16}{'seconds':>9}{'MB/s':>9}")
            for what, seconds in best.items():
                print(f"{what:<16}{seconds:>9.3f}{total / 1e6 / seconds:>9.1f}")
            ratio = best["s3fs get"] / best["registry pull"]
            print(f"ratio: s3fs get / registry pull {ratio:.2f} (target >= {TARGET}: "
                  f"{'yes' if ratio >= TARGET else 'NO'})")
    finally:
        moto.terminate()
        moto.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
