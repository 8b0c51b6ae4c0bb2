"""ImageNet-tiny (`downscale`): speed per core, scaling, memory, and accuracy.

    python benchmarks/bench_tiny.py [--sections speed,scaling,memory,accuracy]
        [--speed-images 2000] [--scale-classes 40] [--scale-per-class 400]
        [--memory-sizes 20000,100000] [--distinct 300] [--size 32] [--smoke]

speed     per core, one process, the same 500x375-ish photo-like JPEGs read from one
          tar: plain Pillow (full decode + convert + box resize), the decode floor
          (Pillow's 1/8-scale decode alone: no resize, no write), the same decode with
          libjpeg called straight as ours calls it (recipes/jpegdraft.py: no Python
          header parse), and our recipe's tasks
          (read, draft decode, box resize, write, per-record provenance); then the
          whole single-worker resolve. Prints ours/plain, ours/floor and ours/straight.
scaling   the whole resolve of a train tar-of-tars with 1 worker and with every core.
memory    peak RSS of the coordinator (and of the largest worker) resolving 8x8 gray
          tiny sets of two sizes; the growth per image.
accuracy  mean absolute difference (0-255, per channel) of our outputs against full
          decode + the same fit and filter, over the distinct images.

--smoke runs every section on a few dozen images (seconds): it checks that the script
works, not how fast.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import (
    cpu_count,
    mean_kib,
    pool,
    write_imagenet_manifest,
    write_train_tar,
    write_val_tar,
)

SMOKE = {"speed_images": 20, "scale_classes": 2, "scale_per_class": 10,
         "memory_sizes": "40,80", "memory_per_class": 20, "distinct": 4, "repeat": 1}


def manifest(root: Path, params: str, train: bool, val: bool) -> None:
    inputs = ", ".join([*(["train: train"] if train else []), *(["val: val"] if val else []),
                        "labels: labels"])
    write_imagenet_manifest(root, f"""
  - name: tiny
    recipe: downscale
    inputs: {{{inputs}}}
    params: {{{params}, require_all_classes: false}}
""")


def best(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def speed(work: Path, images: list[bytes], count: int, size: int) -> None:
    from PIL import Image

    from dataset_registry import Registry
    from dataset_registry.artifact.output import Output
    from dataset_registry.recipes import jpegdraft
    from dataset_registry.recipes.downscale import DownscaleRecipe
    from dataset_registry.sources.members import read_member

    def eighth(width: int, height: int) -> tuple[int, int]:
        return width // 8, height // 8

    root = work / "speed"
    manifest(root, f"width: {size}, height: {size}, fit: squash, filter: box", False, True)
    tar = write_val_tar(str(work / "speed-val.tar"), images, count)
    reg = Registry.open(str(root))
    reg.set_source("val", tar)
    node = reg.manifests.get("tiny")
    inputs, _, _ = reg.resolver.inputs(node)
    refs = list(inputs.images["val"]["val"])

    def plain() -> None:
        for ref in refs:
            im = Image.open(io.BytesIO(read_member(ref)))
            im.convert("RGB").resize((size, size), Image.Resampling.BOX).tobytes()

    def floor() -> None:
        for ref in refs:
            im = Image.open(io.BytesIO(read_member(ref)))
            im.draft("RGB", (im.width // 8, im.height // 8))
            im.load()

    def straight() -> None:  # the same 1/8 decode, libjpeg called as ours calls it
        for ref in refs:
            jpegdraft.decode(read_member(ref), eighth)

    def ours() -> None:
        out_dir = tempfile.mkdtemp(dir=work)
        for i, task in enumerate(DownscaleRecipe.plan(node.params, inputs)):
            out = Output(out_dir, f"{i:06d}")
            DownscaleRecipe.run(node.params, task, out)
            out.close()
        shutil.rmtree(out_dir)

    def resolve() -> None:
        shutil.rmtree(root / "registry", ignore_errors=True)
        Registry.open(str(root)).resolve("tiny", jobs=1)

    timings = {name: float("inf") for name in ("plain", "floor", "straight", "ours", "resolve")}
    for _ in range(3):  # interleaved, best of three: drift hits every method alike
        for name, fn in (("plain", plain), ("floor", floor), ("straight", straight),
                         ("ours", ours), ("resolve", resolve)):
            timings[name] = min(timings[name], best(fn, 1))
    rate = {k: count / v for k, v in timings.items()}
    print(f"\n## speed, one core: {count} JPEGs, mean {mean_kib(images):.1f} KiB, "
          f"{len(images)} distinct, output {size}x{size} sRGB, squash, box")
    print(f"{'method':58s} {'img/s':>8s}")
    for name, label in (("plain", "plain Pillow: full decode + convert + box resize"),
                        ("floor", "decode floor: 1/8-scale decode alone"),
                        ("straight", "the same decode, libjpeg called straight (as ours)"),
                        ("ours", "ours: recipe tasks (read, decode, resize, write, records)"),
                        ("resolve", "ours: whole `resolve`, 1 worker (+ index, parquet, catalog)")):
        print(f"{label:58s} {rate[name]:8.0f}")
    print(f"ratio ours / plain Pillow   {rate['ours'] / rate['plain']:.2f}  (target >= 2.5)")
    print(f"ratio ours / decode floor   {rate['ours'] / rate['floor']:.2f}  (target >= 0.95)")
    print(f"ratio ours / straight decode {rate['ours'] / rate['straight']:.2f}  (what the "
          "resize, write and records cost beside the decode itself)")
    print(f"ratio whole resolve / plain {rate['resolve'] / rate['plain']:.2f}")


def _floor_chunk(args: tuple[str, list[tuple[int, int]]]) -> int:
    from PIL import Image

    path, spans = args
    with open(path, "rb") as f:
        for offset, size in spans:
            im = Image.open(io.BytesIO(os.pread(f.fileno(), size, offset)))
            im.draft("RGB", (im.width // 8, im.height // 8))
            im.load()
    return len(spans)


def bare_floor_seconds(tar: str, spans: list[tuple[int, int]], jobs: int) -> float:
    """The hardware's own ceiling: the decode floor alone over the same members, in a plain
    process pool (no registry code at all; the same fork server as the registry's pools)."""
    from dataset_registry.core.processes import worker_context

    chunks = [(tar, spans[i:i + 256]) for i in range(0, len(spans), 256)]
    start = time.perf_counter()
    if jobs == 1:
        for chunk in chunks:
            _floor_chunk(chunk)
    else:
        with worker_context().Pool(jobs) as pool:
            pool.map(_floor_chunk, chunks, chunksize=1)
    return time.perf_counter() - start


def scaling(work: Path, images: list[bytes], classes: int, per_class: int, size: int,
            repeat: int) -> None:
    from dataset_registry import Registry
    from dataset_registry.sources.index import member_sets

    root = work / "scaling"
    manifest(root, f"width: {size}, height: {size}, fit: squash", True, False)
    tar = write_train_tar(str(work / "scale-train.tar"), images, classes, per_class)
    Registry.open(str(root)).set_source("train", tar)
    n, cores = classes * per_class, cpu_count()
    best_runs: dict[int, tuple] = {}
    for _ in range(repeat):  # interleaved; the best of each: interference only ever slows
        for jobs in sorted({1, cores}):
            shutil.rmtree(root / "registry", ignore_errors=True)
            start = time.perf_counter()
            ds = Registry.open(str(root)).resolve("tiny", jobs=jobs)
            run = (jobs, time.perf_counter() - start, ds.digest, ds.marker.built["phases"])
            if jobs not in best_runs or run[1] < best_runs[jobs][1]:
                best_runs[jobs] = run
    rows = [best_runs[j] for j in sorted(best_runs)]
    print(f"\n## scaling: whole resolve, {n} train images (tar of {classes} class tars), "
          f"{size}x{size}, {cores} cores, best of {repeat}")
    print(f"{'workers':>8s} {'seconds':>9s} {'img/s':>8s} {'efficiency':>10s}  phases (s)")
    t1 = rows[0][1]
    for jobs, seconds, _, phases in rows:
        print(f"{jobs:8d} {seconds:9.2f} {n / seconds:8.0f} {t1 / (jobs * seconds):10.2f}  "
              + " ".join(f"{k} {v:.2f}" for k, v in phases.items()))
    print(f"same digest for every worker count: {len({r[2] for r in rows}) == 1}")
    refs = member_sets(Registry.open(str(root)).resolver.source_info("train"))["train"]
    spans = list(zip(refs.offsets.tolist(), refs.sizes.tolist(), strict=True))
    b1 = min(bare_floor_seconds(tar, spans, 1) for _ in range(repeat))
    bn = min(bare_floor_seconds(tar, spans, cores) for _ in range(repeat))
    bare = b1 / (cores * bn)
    print(f"hardware ceiling, bare 1/8 decode in a plain process pool: 1 process {n / b1:.0f} "
          f"img/s, {cores} processes {n / bn:.0f} img/s, efficiency {bare:.2f}")
    ours = t1 / (rows[-1][0] * rows[-1][1])
    print(f"ratio ours / bare efficiency at {rows[-1][0]} workers {ours / bare:.2f} "
          f"(target >= 0.9, issue 19)")


MEASURE = """
import json, resource, sys, tracemalloc
from dataset_registry import Registry
if __name__ == "__main__":
    tracemalloc.start()
    ds = Registry.open(sys.argv[1]).resolve("tiny", jobs=int(sys.argv[2]))
    print(json.dumps({"rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      "heap_peak": tracemalloc.get_traced_memory()[1],
                      "records": ds.marker.files}))
"""


def memory(work: Path, sizes: list[int], per_class: int) -> None:
    from dataset_registry import Registry

    small = pool(min(200, per_class), 64, 48, cpu_count())
    results = []
    for n in sizes:
        root = work / f"memory-{n}"
        manifest(root, "width: 8, height: 8, color: gray", True, False)
        tar = write_train_tar(str(work / f"mem-{n}.tar"), small, n // per_class, per_class)
        Registry.open(str(root)).set_source("train", tar)
        script = work / "measure.py"
        script.write_text(MEASURE)
        out = subprocess.run([sys.executable, str(script), str(root), str(cpu_count())],
                             capture_output=True, text=True, check=True)
        results.append((n, json.loads(out.stdout.strip().splitlines()[-1])))
        os.remove(tar)
    print("\n## memory: the coordinator resolving 8x8 gray tiny train sets (tars of "
          f"{per_class}-image class tars); workers hold one 256-image task at a time")
    print(f"{'images':>8s} {'peak RSS MiB':>13s} {'Python heap peak MiB':>21s}")
    for n, r in results:
        print(f"{n:8d} {r['rss_kib'] / 1024:13.1f} {r['heap_peak'] / 2**20:21.1f}")
    (n0, r0), (n1, r1) = results[0], results[-1]
    rss = (r1["rss_kib"] - r0["rss_kib"]) * 1024 / (n1 - n0)
    heap = (r1["heap_peak"] - r0["heap_peak"]) / (n1 - n0)
    print(f"growth per image: RSS {rss:.0f} bytes, Python heap {heap:.0f} bytes (metadata: "
          f"member name, offsets, label; an 8x8 gray image is 64 bytes, 32x32 sRGB 3072)")


def accuracy(images: list[bytes]) -> None:
    import numpy as np

    from dataset_registry.recipes.imaging import Downscale, downscale

    configs = [Downscale(32, 32, "squash"), Downscale(32, 32, "crop"), Downscale(32, 32, "pad"),
               Downscale(64, 64, "crop"), Downscale(16, 16, "crop", "gray"),
               Downscale(8, 8, "crop", "gray"), Downscale(32, 32, "squash", filter="lanczos")]
    print(f"\n## accuracy: ours vs full decode + same fit and filter, {len(images)} images, "
          f"mean {mean_kib(images):.1f} KiB")
    print(f"{'output':32s} {'mean MAD':>9s} {'p95':>6s} {'max':>6s}")
    for spec in configs:
        diffs = []
        for data in images:
            ours = np.frombuffer(downscale(data, spec, "x"), np.uint8).astype(np.int16)
            ref = np.frombuffer(downscale(data, spec, "x", draft=False), np.uint8)
            diffs.append(float(np.abs(ours - ref).mean()))
        label = f"{spec.width}x{spec.height} {spec.color} {spec.fit} {spec.filter}"
        print(f"{label:32s} {np.mean(diffs):9.2f} {np.percentile(diffs, 95):6.2f} "
              f"{max(diffs):6.2f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sections", default="speed,scaling,memory,accuracy")
    ap.add_argument("--speed-images", type=int, default=2000)
    ap.add_argument("--scale-classes", type=int, default=40)
    ap.add_argument("--scale-per-class", type=int, default=400)
    ap.add_argument("--memory-sizes", default="20000,100000")
    ap.add_argument("--distinct", type=int, default=300)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=3, help="scaling runs per worker count")
    ap.add_argument("--memory-per-class", type=int, default=1000,
                    help="images per class tar in the memory section")
    ap.add_argument("--smoke", action="store_true", help="every section, tiny")
    args = ap.parse_args()
    if args.smoke:
        vars(args).update(SMOKE)
    sections = args.sections.split(",")
    work = Path(tempfile.mkdtemp(prefix="bench-tiny-"))
    try:
        print(f"{cpu_count()} cores; rendering {args.distinct} distinct photo-like images ...",
              flush=True)
        images = pool(args.distinct, 500, 375, cpu_count())
        if "speed" in sections:
            speed(work, images, args.speed_images, args.size)
        if "scaling" in sections:
            scaling(work, images, args.scale_classes, args.scale_per_class, args.size,
                    args.repeat)
        if "memory" in sections:
            memory(work, [int(s) for s in args.memory_sizes.split(",")],
                   args.memory_per_class)
        if "accuracy" in sections:
            accuracy(images)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
