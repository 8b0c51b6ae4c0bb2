"""Indexing a source cold, against one xxh3 pass over the same file.

    python benchmarks/bench_index.py [--classes 100 --per-class 1000 --member-bytes 1500]
                                     [--runs 3] [--zip] [--smoke]

Writes a tar of per-class tars shaped like ImageNet's train tar (`n%08d.tar` members
holding `n%08d_%d.JPEG` files of --member-bytes random bytes), then measures whole
processes, best of --runs, taken in turn each round:

- the floor: `xxh128sum` of the tar (one xxh3 pass, what a user would time a read of
  the file by; a Python `xxhash` loop over 1 MiB reads where the tool is missing);
- `registry source check --force` of it (layout imagenet-train): read every header,
  refuse what GNU tar would not extract the same, hash every member, write the index;
- with --zip, the same members as a zip (`<wnid>/<file>`, stored), layout image-folder.

It prints members per second, the throughput ratio to the floor (target >= 0.5 for
ImageNet-sized members: --member-bytes 110000), and the peak memory of the registry
process (target < 0.5 GiB at 1,281,167 members on 16 cores, in at most 5 s). --smoke
runs once on 2,000 small members: it checks that the script works, so its exit status
ignores the targets.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MANIFEST = """sources:
  - {name: bench-train, layout: imagenet-train}
  - {name: bench-zip, layout: image-folder}
"""
SMOKE = {"classes": 4, "per_class": 500, "member_bytes": 1500, "runs": 1}
TARGET_RATIO, TARGET_SECONDS, TARGET_GIB = 0.5, 5.0, 0.5


def _header(name: str, size: int, kind: bytes = b"0") -> bytes:
    """A plain ustar header, as GNU tar writes one."""
    block = bytearray(512)
    block[0:len(name)] = name.encode()
    block[100:108] = b"0000644\0"
    block[108:116] = block[116:124] = b"0000000\0"
    block[124:136] = b"%011o\0" % size
    block[136:148] = b"14712345670\0"
    block[156:157] = kind
    block[257:265] = b"ustar\x0000"
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def _padded(data: bytes) -> bytes:
    return data + bytes(-len(data) % 512)


def write_train_tar(path: Path, classes: int, per_class: int, member_bytes: int) -> int:
    """The ImageNet-shaped tar of tars; its size in bytes. Member bytes are random (xxh3
    cannot skip anything) but repeat per class, so writing stays quick."""
    rng = os.urandom(member_bytes + per_class)
    with open(path, "wb") as out:
        for c in range(classes):
            wnid = f"n{c:08d}"
            inner = bytearray()
            for i in range(per_class):
                data = rng[i:i + member_bytes]
                inner += _header(f"{wnid}_{i}.JPEG", len(data)) + _padded(data)
            inner += bytes(1024)
            out.write(_header(f"{wnid}.tar", len(inner)) + _padded(bytes(inner)))
        out.write(bytes(1024))
    return path.stat().st_size


def write_zip(path: Path, classes: int, per_class: int, member_bytes: int) -> int:
    rng = os.urandom(member_bytes + per_class)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for c in range(classes):
            for i in range(per_class):
                z.writestr(f"n{c:08d}/n{c:08d}_{i}.JPEG", rng[i:i + member_bytes])
    return path.stat().st_size


def written(write: Callable[..., int], path: Path, *shape: int) -> int:
    """`write(path, *shape)` in a child process: zipfile keeps an object per member, and a
    child forked from a big parent reports the parent's peak memory as its own, so the
    archives are written where the measured processes do not start from."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
        return pool.submit(write, path, *shape).result()


def timed(cmd: list[str], cwd: Path) -> tuple[float, int]:
    """(seconds, peak RSS in bytes) of one whole process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    err = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{err}")
    return seconds, usage.ru_maxrss * 1024


def floor_command(path: Path) -> tuple[list[str], str]:
    tool = shutil.which("xxh128sum")
    if tool:
        return [tool, str(path)], "xxh128sum"
    code = ("import sys, xxhash\nh = xxhash.xxh3_128()\nf = open(sys.argv[1], 'rb')\n"
            "while b := f.read(1 << 20): h.update(b)\nprint(h.hexdigest())")
    return [sys.executable, "-c", code, str(path)], "python xxh3 loop (no xxh128sum here)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--per-class", type=int, default=1000)
    parser.add_argument("--member-bytes", type=int, default=1500)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--zip", action="store_true", help="also index the members as a zip")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        for key, value in SMOKE.items():
            setattr(args, key, value)
    registry = [sys.executable, "-m", "dataset_registry.cli"]
    work = Path(tempfile.mkdtemp(prefix="bench-index-"))
    try:
        subprocess.run([*registry, "init", str(work)], check=True, stdout=subprocess.DEVNULL)
        (work / "manifests" / "bench.yaml").write_text(MANIFEST)
        members = args.classes * args.per_class
        shape = (args.classes, args.per_class, args.member_bytes)
        tar = work / "train.tar"
        sizes = {"tar": written(write_train_tar, tar, *shape)}
        subjects = {"tar": ("bench-train", tar)}
        if args.zip:
            archive = work / "train.zip"
            sizes["zip"] = written(write_zip, archive, *shape)
            subjects["zip"] = ("bench-zip", archive)
        for name, path in subjects.values():  # point each source at its file (indexes once)
            subprocess.run([*registry, "source", "set", name, str(path)], cwd=work, check=True,
                           stdout=subprocess.DEVNULL)
        floor_name = floor_command(tar)[1]
        best: dict[str, tuple[float, int]] = {}
        for _ in range(args.runs):
            for kind, (name, path) in subjects.items():
                floor = timed(floor_command(path)[0], work)
                ours = timed([*registry, "source", "check", "--force", name], work)
                for key, value in ((f"floor {kind}", floor), (f"ours {kind}", ours)):
                    if key not in best or value[0] < best[key][0]:
                        best[key] = value
        print(f"{members:,} members of {args.member_bytes:,} bytes in {args.classes:,} class "
              f"tars; {os.cpu_count()} cores; floor: {floor_name}; best of {args.runs}")
        print(f"{'what':<34} {'seconds':>8} {'MB/s':>8} {'members/s':>11} {'peak MiB':>9}")
        for key, (seconds, rss) in best.items():
            kind = key.split()[1]
            print(f"{key:<34} {seconds:8.3f} {sizes[kind] / seconds / 1e6:8.0f} "
                  f"{members / seconds:11,.0f} {rss / 2**20:9.0f}")
        ok = True
        for kind in subjects:
            ratio = best[f"floor {kind}"][0] / best[f"ours {kind}"][0]
            seconds, rss = best[f"ours {kind}"]
            print(f"ratio ours / floor throughput, {kind}  {ratio:.2f}  (target >= "
                  f"{TARGET_RATIO} for ImageNet-sized members)")
            print(f"ours {kind}: {seconds:.2f} s, peak {rss / 2**30:.2f} GiB  (targets at "
                  f"1,281,167 members on 16 cores: <= {TARGET_SECONDS} s, < {TARGET_GIB} GiB)")
            ok = ok and (args.member_bytes < 50_000 or ratio >= TARGET_RATIO)
        return 0 if ok or args.smoke else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
