"""Perceptual hashes for the leak audit (`audit.py`): ImageHash's pHash of the reduced-size
decode the image check does, cached by member xxh3, compared across splits in blocks.

Each distinct image (one xxh3) is decoded once, ever: `Fingerprints` keeps what its decode
gave (a hash, or why it is not one) in the state folder, so a second audit reads no image.
Why pHash, and why a distance of at most 10 of its 64 bits: README, "Leak audit".
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.contentcache import ContentCache, digests_of, positions, raw
from ..errors import BadImageError
from ..recipes.imaging import Downscale, check_image, downscale, open_image, quiet_bomb_warnings
from ..sources.members import MemberRef, read_members, use_remote

SIDE = 32  # pHash's input: 32x32 gray, whose 8x8 lowest DCT frequencies give the 64 bits
THRESHOLD = 10  # near: at most this many of the 64 bits differ (README: what was measured)
# ImageHash's own reduction (convert("L"): Rec.601 luma; LANCZOS), from the draft decode
SPEC = Downscale(SIDE, SIDE, color="gray", luma="rec601", filter="lanczos")
INSTALL = ("install ImageHash to check them: pip install ImageHash (or, in a checkout: "
           "pip install -e '.[audit]')")

# What one image's decode gave (0: not known yet)
HASHED = 1  # decoded, and hashed
DECODED = 2  # decoded, not hashed (ImageHash was not installed then)
SMALL = 3  # decoded, a side under SIDE pixels: a hash of so few pixels tells images apart badly
UNHASHABLE = 4  # decodes (a float TIFF), but has no 8-bit gray rendering to hash
UNDECODABLE = 5  # what the image check refuses: corrupt, truncated, a bomb
FLAT = 6  # decoded, of one colour (near enough): its pHash is noise, any two such "match"
FLAT_RANGE = 8  # gray levels (of 255) between the darkest and lightest of the 32x32 pixels

_NAME = "<image>"  # decoded by content, not name: messages are stored without one
CHUNK = 256  # images a pool task
_FLUSH = 50_000  # fingerprints written out at least this often (a long first audit resumes)


def available() -> bool:
    """Whether ImageHash imports (with its scipy and PyWavelets)."""
    try:
        import imagehash  # noqa: F401
    except ImportError:
        return False
    return True


def method() -> str:
    import imagehash

    return f"pHash, 64 bits (ImageHash {imagehash.__version__})"


def fingerprint(data: bytes, hashing: bool) -> tuple[int, int, str]:
    """(state, pHash as an int, why it is undecodable) of one image's bytes."""
    try:
        pixels = downscale(data, SPEC, _NAME)  # JPEGs drafted to the smallest DCT scale >= 32
    except BadImageError:
        try:
            check_image(data, _NAME)  # what builds accept, a float TIFF say, is no leak
        except BadImageError as exc:
            return UNDECODABLE, 0, str(exc).removeprefix(f"{_NAME}: ")
        return UNHASHABLE, 0, ""
    if not hashing:
        return DECODED, 0, ""
    with open_image(data, _NAME) as im:  # the header again, for the size the decode hid
        if min(im.size) < SIDE:
            return SMALL, 0, ""
    gray = np.frombuffer(pixels, np.uint8)
    if int(gray.max()) - int(gray.min()) <= FLAT_RANGE:
        return FLAT, 0, ""
    import imagehash
    from PIL import Image

    bits = imagehash.phash(Image.frombytes("L", (SIDE, SIDE), pixels)).hash.ravel()
    return HASHED, int.from_bytes(np.packbits(bits).tobytes(), "big"), ""


def fingerprint_members(refs: list[MemberRef], hashing: bool, remote: Any = None
                        ) -> list[tuple[int, int, str]]:
    """`fingerprint` of each member's bytes (read checked against its xxh3), in order; a
    pool task."""
    if remote is not None:
        use_remote(remote)
    with quiet_bomb_warnings():  # `downscale` refuses bombs itself
        return [fingerprint(data, hashing) for _, data in read_members(refs)]


@dataclass
class Known:
    """Fingerprints by content: `digests` (sorted, unique, numpy S16 raw xxh3s), and for
    each its state, hash and, for an undecodable one, why (by position)."""

    digests: np.ndarray
    states: np.ndarray  # uint8
    hashes: np.ndarray  # uint64
    why: dict[int, str]

    def find(self, digests: np.ndarray) -> np.ndarray:
        """The position of each of `digests` here, -1 where it is not known."""
        return positions(self.digests, digests)


class Fingerprints:
    """The cache: `<state>/phash/v2-*.npz` (core.contentcache)."""

    VERSION = "v2"  # v2: FLAT; raised whenever what a fingerprint means changes (SPEC, the states)

    def __init__(self, state_dir: str) -> None:
        self.folder = os.path.join(state_dir, "phash")
        self._files = ContentCache(self.folder, f"{self.VERSION}-", _read, _merge, _arrays)

    def files(self) -> list[str]:
        return self._files.files()

    def load(self) -> Known:
        return self._files.load()

    def add(self, digests: np.ndarray, states: np.ndarray, hashes: np.ndarray,
            why: dict[int, str]) -> None:
        if len(digests):
            self._files.write(Known(digests, states, hashes, why))


def _read(z: Any) -> dict[str, np.ndarray]:
    return {k: z[k] for k in ("digests", "states", "hashes", "why_at", "why")}


def _arrays(known: Known) -> dict[str, np.ndarray]:
    at = np.array(sorted(known.why), dtype=np.int64)
    return {"digests": raw(known.digests), "states": known.states, "hashes": known.hashes,
            "why_at": at, "why": np.array([known.why[i] for i in at.tolist()], dtype=str)}


def _merge(parts: list[dict[str, np.ndarray]]) -> Known:
    """One `Known` of several files' entries; where one content appears twice, a hashed
    entry wins over a merely decoded one (the same decode, before ImageHash was there)."""
    if not parts:
        return Known(np.empty(0, "S16"), np.empty(0, np.uint8), np.empty(0, np.uint64), {})
    digests = np.concatenate([digests_of(p["digests"]) for p in parts])
    states = np.concatenate([p["states"] for p in parts]).astype(np.uint8)
    hashes = np.concatenate([p["hashes"] for p in parts]).astype(np.uint64)
    why, start = {}, 0
    for p in parts:
        why.update({start + int(i): str(w) for i, w in zip(p["why_at"], p["why"], strict=True)})
        start += len(p["states"])
    worse = (states == DECODED).astype(np.int8)
    order = np.lexsort((worse, digests))  # by digest, the better entry first
    keep = order[np.r_[True, digests[order][1:] != digests[order][:-1]]]
    return Known(digests[keep], states[keep], hashes[keep],
                 {new: why[old] for new, old in enumerate(keep.tolist()) if old in why})


@dataclass
class Fingerprinted:
    """What `fingerprints` found for each content asked about, and how: `decoded` of them
    read and decoded now, the rest from the cache."""

    states: np.ndarray
    hashes: np.ndarray
    why: dict[int, str]
    decoded: int


def fingerprints(state_dir: str, digests: np.ndarray, refs: Callable[[np.ndarray],
                 list[MemberRef]], *, hashing: bool, jobs: int | None = None,
                 remote: Any = None, progress: Any = None) -> Fingerprinted:
    """The fingerprint of each content (`digests`, S16), from the cache or else by decoding
    one member holding it (`refs(positions)`); what was decoded is added to the cache."""
    cache = Fingerprints(state_dir)
    known = cache.load()
    at = known.find(digests)
    hit = at >= 0
    states, hashes = np.zeros(len(digests), np.uint8), np.zeros(len(digests), np.uint64)
    states[hit], hashes[hit] = known.states[at[hit]], known.hashes[at[hit]]
    why = {i: known.why[int(a)] for i, a in enumerate(at.tolist()) if a in known.why}
    todo = np.nonzero((states == 0) | (hashing & (states == DECODED)))[0]
    chunks = [todo[i:i + CHUNK] for i in range(0, len(todo), CHUNK)]
    pending: list[np.ndarray] = []
    with _progress(progress, "fingerprinting images", len(todo)) as advance:
        for chunk, found in zip(chunks, _run(chunks, refs, hashing, jobs, remote), strict=True):
            for i, (state, value, text) in zip(chunk.tolist(), found, strict=True):
                states[i], hashes[i] = state, value
                if text:
                    why[i] = text
            pending.append(chunk)
            if advance:
                advance(len(chunk))
            if sum(map(len, pending)) >= _FLUSH:
                _save(cache, np.concatenate(pending), digests, states, hashes, why)
                pending = []
        if pending:
            _save(cache, np.concatenate(pending), digests, states, hashes, why)
    return Fingerprinted(states, hashes, why, len(todo))


def _save(cache: Fingerprints, done: np.ndarray, digests: np.ndarray, states: np.ndarray,
          hashes: np.ndarray, why: dict[int, str]) -> None:
    order = done[np.argsort(digests[done], kind="stable")]
    cache.add(digests[order], states[order], hashes[order],
              {k: why[int(i)] for k, i in enumerate(order.tolist()) if int(i) in why})


def _run(chunks: list[np.ndarray], refs: Callable[[np.ndarray], list[MemberRef]],
         hashing: bool, jobs: int | None, remote: Any) -> Any:
    """Each chunk's fingerprints, in order: inline for one chunk or one job, else on a
    process pool of `jobs` workers (default: every core)."""
    workers = max(1, jobs or os.cpu_count() or 1)
    if workers == 1 or len(chunks) <= 1:
        for chunk in chunks:
            yield fingerprint_members(refs(chunk), hashing, remote)
        return
    from concurrent.futures import ProcessPoolExecutor

    from ..core.processes import shut_down, watch_coordinator, worker_context

    pool = ProcessPoolExecutor(max_workers=min(workers, len(chunks)),
                               mp_context=worker_context(), initializer=watch_coordinator,
                               initargs=(os.getpid(),))
    try:
        ahead = workers * 2  # tasks in flight: the pool stays busy, memory stays flat
        futures = deque(pool.submit(fingerprint_members, refs(c), hashing, remote)
                        for c in chunks[:ahead])
        for n in range(len(chunks)):
            if n + ahead < len(chunks):
                futures.append(pool.submit(fingerprint_members, refs(chunks[n + ahead]),
                                           hashing, remote))
            yield futures.popleft().result()
    finally:
        shut_down(pool)


@contextlib.contextmanager
def _progress(factory: Any, label: str, total: int) -> Any:
    if factory is None or total == 0:
        yield None
        return
    with factory(label, total) as advance:
        yield advance


def near_pairs(a: np.ndarray, b: np.ndarray, threshold: int, ids_a: np.ndarray,
               ids_b: np.ndarray, keep: int = 1_000_000
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(i, j, distance) of the pairs of hashes a[i], b[j] at most `threshold` bits apart
    whose contents differ (ids_a[i] != ids_b[j]: exact copies are reported as such), at
    most `keep` of them, and how many there are. XOR and popcount over cache-sized blocks
    of every pair, vectorised: 1.35 billion pairs per CPU-second here (ImageNet's train x
    val, 6.4e10 pairs: under a minute)."""
    rows, cols = 16, 16384  # 2 MiB of XORs a block
    got_i: list[np.ndarray] = []
    got_j: list[np.ndarray] = []
    got_d: list[np.ndarray] = []
    total = kept = 0
    xor = np.empty((rows, cols), np.uint64)
    bits = np.empty((rows, cols), np.uint8)
    near = np.empty((rows, cols), bool)
    for r in range(0, len(a), rows):
        left = a[r:r + rows, None]
        for c in range(0, len(b), cols):
            right = b[None, c:c + cols]
            x, n, hit = (m[:left.shape[0], :right.shape[1]] for m in (xor, bits, near))
            np.bitwise_xor(left, right, out=x)
            _popcount(x, n)
            np.less_equal(n, threshold, out=hit)
            if not hit.any():
                continue
            i, j = np.nonzero(hit)
            other = ids_a[r + i] != ids_b[c + j]
            i, j = i[other], j[other]
            total += len(i)
            if kept < keep and len(i):
                room = keep - kept
                got_i.append(r + i[:room])
                got_j.append(c + j[:room])
                got_d.append(n[i[:room], j[:room]].astype(np.int64))
                kept += len(got_i[-1])
    if not got_i:
        empty = np.empty(0, np.int64)
        return empty, empty, empty, 0
    return np.concatenate(got_i), np.concatenate(got_j), np.concatenate(got_d), total


def _popcount(x: np.ndarray, out: np.ndarray) -> None:
    """Set bits of each uint64 of `x`, into `out` (uint8)."""
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        np.bitwise_count(x, out=out)
        return
    table = np.array([bin(v).count("1") for v in range(256)], np.uint8)
    out[...] = table[np.ascontiguousarray(x).view(np.uint8)].reshape(*x.shape, 8).sum(
        axis=-1, dtype=np.uint8)


__all__ = ["THRESHOLD", "Fingerprints", "available", "fingerprints", "near_pairs"]
