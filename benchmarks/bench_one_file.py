"""Writing one file from many processes against writing one file each (the page cache only).

    python benchmarks/bench_one_file.py [--gib 2.6] [--procs 16] [--dir /tmp] [--smoke]

Why recordio's tasks may be slower than webdataset's: every recordio task writes
its records into the one `.rec` (im2rec's format), webdataset's tasks write
shards of their own. Side by side in one run, the same bytes, best of 2:
pwritev   `--procs` processes, each pwritev'ing its own region of one file
fallocate the same into a file the parent sized with posix_fallocate first
mmap      the same into a file the parent sized with ftruncate first, each process
          copying into a shared mapping of its region (no write() call at all)
separate  `--procs` processes, each writing a file of its own
one       a single process writing the whole file sequentially

--smoke writes 2 x 24 MiB from 2 processes (a second): it checks that the script works.
"""

from __future__ import annotations

import argparse
import mmap
import os
import shutil
import tempfile
import time
from multiprocessing import Pool

CHUNK = 24 << 20  # a recordio task's records, roughly
_state: dict[str, object] = {}
SMOKE = {"gib": 2 * CHUNK / 2**30, "procs": 2}


def _init(folder: str, per: int) -> None:
    _state.update(folder=folder, per=per, data=memoryview(os.urandom(1 << 20) * 24))


def _pieces(n: int) -> list[tuple[int, memoryview]]:
    data = _state["data"]
    return [(done, data[:min(CHUNK, n - done)]) for done in range(0, n, CHUNK)]


def _region(i: int) -> None:
    per = _state["per"]
    fd = os.open(os.path.join(_state["folder"], "one.bin"), os.O_WRONLY | os.O_CREAT, 0o644)
    for done, piece in _pieces(per):
        os.pwritev(fd, [piece], i * per + done)
    os.close(fd)


def _sized(total: int, allocate: bool) -> None:
    fd = os.open(os.path.join(_state["folder"], "one.bin"), os.O_WRONLY | os.O_CREAT, 0o644)
    (os.posix_fallocate if allocate else os.ftruncate)(fd, *((0, total) if allocate else (total,)))
    os.close(fd)


def _mapped(i: int) -> None:
    per = _state["per"]
    start = i * per
    aligned = start - start % mmap.ALLOCATIONGRANULARITY
    fd = os.open(os.path.join(_state["folder"], "one.bin"), os.O_RDWR)
    with mmap.mmap(fd, start + per - aligned, offset=aligned) as view:
        for done, piece in _pieces(per):
            at = start - aligned + done
            view[at:at + len(piece)] = piece
    os.close(fd)


def _own(i: int) -> None:
    with open(os.path.join(_state["folder"], f"part-{i}.bin"), "wb") as f:
        for _, piece in _pieces(_state["per"]):
            f.write(piece)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gib", type=float, default=2.6)
    ap.add_argument("--procs", type=int, default=16)
    ap.add_argument("--dir", default=None)
    ap.add_argument("--smoke", action="store_true", help="every measurement, tiny")
    args = ap.parse_args()
    if args.smoke:
        vars(args).update(SMOKE)
    folder = tempfile.mkdtemp(prefix="bench-one-file-", dir=args.dir)
    per = int(args.gib * 2**30) // args.procs
    total = per * args.procs
    best: dict[str, float] = {}
    try:
        with Pool(args.procs, initializer=_init, initargs=(folder, per)) as pool:
            pool.map(abs, range(args.procs))  # workers started and initialised, untimed
            _init(folder, total)  # this process writes the whole file alone
            for _ in range(2):
                for name, run in (("pwritev", lambda: pool.map(_region, range(args.procs))),
                                  ("fallocate", lambda: (_sized(total, True),
                                                         pool.map(_region, range(args.procs)))),
                                  ("mmap", lambda: (_sized(total, False),
                                                    pool.map(_mapped, range(args.procs)))),
                                  ("separate", lambda: pool.map(_own, range(args.procs))),
                                  ("one", lambda: _own(0))):
                    for entry in os.listdir(folder):
                        os.remove(os.path.join(folder, entry))
                    os.sync()  # untimed: no method pays for another's dirty pages
                    start = time.perf_counter()
                    run()
                    best[name] = min(best.get(name, 1e9), time.perf_counter() - start)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"{total / 2**30:.2f} GiB, {args.procs} processes, page cache, best of 2")
    for name, label in (("pwritev", f"{args.procs} processes into one file (pwritev)"),
                        ("fallocate", "the same, file posix_fallocate'd first"),
                        ("mmap", "the same through shared mappings"),
                        ("separate", f"{args.procs} processes into a file each"),
                        ("one", "one process into one file")):
        print(f"{label:40s} {best[name]:6.2f} s {total / best[name] / 1e9:6.2f} GB/s")
    print(f"one file / separate files: {best['pwritev'] / best['separate']:.1f}x the time")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
