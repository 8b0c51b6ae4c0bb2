"""Building to an S3 endpoint against building to local disk; batched against serial uploads.

    python benchmarks/bench_s3.py [--val-images 2000] [--jobs 2] [--runs 2] [--smoke]

Starts moto's standalone S3 server (`python -m moto.server`, its own process) on
127.0.0.1, synthesizes a val set, and measures side by side in one run:

local / s3   `resolve` of a calibration variant (500 JPEGs copied from the tar) and of
             an ImageNet-tiny variant written as folders of PNGs (one small file per
             image), into a fresh local store and a fresh s3://bench/<prefix> each run
serial/batch uploading the same N small files one request at a time (`put_file` in a
             loop) against one batched s3fs call (`put` of lists: concurrent requests)

Prints seconds, files/s and the ratios local/s3 (1.0 = S3 as fast as disk) and
serial/batch (how much concurrency buys). The S3 side pays real HTTP requests to a
real endpoint on loopback; a remote S3 adds network latency, which batching hides.

--smoke measures everything once on 20 images and 20 uploads (seconds): it checks that
the script works, not how fast.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import write_imagenet_manifest

SMOKE = {"val_images": 20, "runs": 1, "upload_files": 20}
DATASETS = """
  - name: cal
    recipe: calibration
    inputs: {images: val, labels: labels}
    params: {first: %d, check_labels: false}
  - name: tiny
    recipe: downscale
    inputs: {val: val, labels: labels}
    params: {width: 16, height: 16, format: folders, require_all_classes: false}
"""


def start_moto(port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import urllib.request

    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1)
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("moto server did not start")


def moto_endpoint() -> tuple[subprocess.Popen, dict[str, str], int]:
    """moto's standalone server on a free port of 127.0.0.1 (its own process), the s3fs
    options that reach it with the tests' fake credentials, and its port; the caller stops
    the process (`terminate`, `wait`)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    from s3kit import FAKE_KEY, FAKE_SECRET, free_port

    port = free_port()
    proc = start_moto(port)
    return proc, {"endpoint_url": f"http://127.0.0.1:{port}", "key": FAKE_KEY,
                  "secret": FAKE_SECRET}, port


def timed_resolve(root: Path, store: str, name: str, jobs: int,
                  options: dict[str, str] | None, first: int) -> tuple[float, int]:
    from dataset_registry import Registry

    write_imagenet_manifest(root, DATASETS % first)
    reg = Registry.open(str(root), store=store, storage_options=options)
    reg.set_source("val", str(root.parent / "synth" / "ILSVRC2012_img_val.tar"))
    start = time.perf_counter()
    ds = reg.resolve(name, jobs=jobs)
    seconds = time.perf_counter() - start
    assert ds.built_now
    return seconds, ds.marker.files


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--val-images", type=int, default=2000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--runs", type=int, default=2, help="repeats; the best run is shown")
    ap.add_argument("--upload-files", type=int, default=1000)
    ap.add_argument("--smoke", action="store_true", help="every measurement, tiny and once")
    args = ap.parse_args()
    if args.smoke:
        vars(args).update(SMOKE)
    first = min(500, args.val_images)  # the calibration variant's images

    moto, options, port = moto_endpoint()
    import s3fs

    from dataset_registry.domains.imagenet.synth import SynthSpec, synthesize

    try:
        fs = s3fs.S3FileSystem(skip_instance_cache=True, **options)
        fs.mkdir("bench")
        with tempfile.TemporaryDirectory() as tmp:
            base = Path(tmp)
            synthesize(str(base / "synth"), SynthSpec(
                val_images=args.val_images, train_classes=1, train_per_class=1, width=160,
                height=120, kaggle=False), jobs=args.jobs)
            print(f"{args.val_images} synthetic val images 160x120, {args.jobs} workers, "
                  f"moto server on 127.0.0.1:{port}")
            print(f"{'variant':<8}{'files':>7}{'local s':>10}{'s3 s':>9}{'s3 files/s':>12}"
                  f"{'local/s3':>10}")
            for name in ("cal", "tiny"):
                best: dict[str, float] = {}
                files = 0
                for run in range(args.runs):
                    for where in ("local", "s3"):
                        store = str(base / f"store-{name}-{run}") if where == "local" \
                            else f"s3://bench/{name}-{run}"
                        seconds, files = timed_resolve(
                            base / f"reg-{where}-{name}-{run}", store, name, args.jobs,
                            options if where == "s3" else None, first)
                        best[where] = min(best.get(where, seconds), seconds)
                print(f"{name:<8}{files:>7}{best['local']:>10.2f}{best['s3']:>9.2f}"
                      f"{files / best['s3']:>12.0f}{best['local'] / best['s3']:>10.2f}")
            small = base / "small"
            small.mkdir()
            paths = []
            for i in range(args.upload_files):
                paths.append(small / f"{i:05d}.png")
                paths[-1].write_bytes(os.urandom(600))
            start = time.perf_counter()
            for p in paths:
                fs.put_file(str(p), f"bench/serial/{p.name}")
            serial = time.perf_counter() - start
            start = time.perf_counter()
            fs.put([str(p) for p in paths], [f"bench/batch/{p.name}" for p in paths])
            batch = time.perf_counter() - start
            n = len(paths)
            print(f"upload {n} files of 600 B: serial {serial:.2f} s ({n / serial:.0f}/s), "
                  f"batched {batch:.2f} s ({n / batch:.0f}/s), serial/batch "
                  f"{serial / batch:.2f}")
    finally:
        moto.terminate()
        moto.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
