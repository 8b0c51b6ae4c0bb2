"""Writing a build's output: a task's region in one call against a piece at a time.

    python benchmarks/bench_writes.py [--jobs N] [--mib 180] [--settle 5] [--repeat 2]

In --jobs processes at once, each writes --mib MiB of photo-sized buffers (90 KB) into a
new file of its own, the way each method writes:

- a region in one call: a task's 70 photos (6.3 MB) a `pwritev`, as shard tasks wrote
  their regions before core.filewrites;
- a region a piece at a time: the same buffers through `core.filewrites.pwrite_all`
  (256 KiB a call), as they write now;
- plain calls of 64 KiB to 8 MiB (a copy loop's sizes), for where the cost starts.

Before each run the last run's files are deleted and --settle seconds pass: a machine
that hands freed memory back to its host (free page reporting, on many virtual machines;
on this project's CI machine ~2 s after it is freed) makes new page-cache memory cost
what the host charges for it, and large page-cache blocks (a big write call's) cost the
most there. Prints the writers' CPU time per MB written and the wall time, best of
--repeat, and the ratio of one call to pieces (on bare metal about 1).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import cpu_count
from dataset_registry.core.filewrites import PIECE, pwrite_all

PHOTO = 90_000
REGION = 70  # photos a task's region
SMOKE = {"jobs": 2, "mib": 8, "settle": 0.0, "repeat": 1}
METHODS = {
    "region": "a task's region (6.3 MB) in one call",
    "pieces": f"the region a piece at a time ({PIECE >> 10} KiB calls)",
    **{f"plain-{k}": f"plain calls of {k} KiB" for k in (64, 256, 1024, 2048, 8192)},
}


def write(path: str, method: str, mib: int) -> tuple[float, int]:
    """One writer: at least `mib` MiB into a new file at `path` by `method` (whole calls);
    its CPU seconds and the bytes it wrote."""
    photos = [os.urandom(PHOTO) for _ in range(REGION)]
    chunk = b"".join(photos) * 2  # (12.6 MB: room for the largest plain call)
    total = mib << 20
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    start = time.thread_time()
    try:
        offset = 0
        while offset < total:
            if method == "region":
                offset += os.pwritev(fd, photos, offset)
            elif method == "pieces":
                offset = pwrite_all(fd, photos, offset)
            else:
                size = int(method.split("-")[1]) << 10
                offset += os.pwrite(fd, memoryview(chunk)[:size], offset)
    finally:
        os.close(fd)
    return time.thread_time() - start, offset


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=cpu_count())
    ap.add_argument("--mib", type=int, default=180, help="MiB each writer writes")
    ap.add_argument("--settle", type=float, default=5.0,
                    help="seconds between deleting the last run's files and the next run")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args()
    if args.smoke:
        vars(args).update(SMOKE)
    work = Path(tempfile.mkdtemp(prefix="bench-writes-"))
    best: dict[str, tuple[float, float]] = {}
    try:
        with ProcessPoolExecutor(args.jobs) as pool:
            list(pool.map(abs, range(args.jobs)))  # the workers started, untimed
            for _ in range(args.repeat):
                for method in METHODS:
                    for old in work.iterdir():
                        old.unlink()
                    os.sync()
                    time.sleep(args.settle)
                    start = time.perf_counter()
                    done = list(pool.map(write, [str(work / f"{k}") for k in range(args.jobs)],
                                         [method] * args.jobs, [args.mib] * args.jobs))
                    wall = time.perf_counter() - start
                    per_mb = sum(c for c, _ in done) / (sum(n for _, n in done) / 1e6)
                    if method not in best or per_mb < best[method][0]:
                        best[method] = (per_mb, wall)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{args.jobs} writer(s) of {args.mib} MiB each, {cpu_count()} cores, "
          f"{args.settle:g} s settled before each run, best of {args.repeat}")
    print(f"{'method':44s} {'CPU ms/MB':>10s} {'wall s':>8s}")
    for method, label in METHODS.items():
        per_mb, wall = best[method]
        print(f"{label:44s} {per_mb * 1e3:10.2f} {wall:8.2f}")
    print(f"ratio region in one call / a piece at a time (CPU per MB)  "
          f"{best['region'][0] / best['pieces'][0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
