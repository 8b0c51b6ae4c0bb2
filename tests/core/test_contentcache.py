"""core/contentcache.py: the file handling the pHash and image-check caches share."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dataset_registry.core.contentcache import PILE, ContentCache, digests_of, positions, raw


def _cache(folder: Path) -> ContentCache:
    def read(z):
        return digests_of(z["digests"])

    def merge(parts):
        return np.unique(np.concatenate(parts)) if parts else np.empty(0, "S16")

    return ContentCache(str(folder), "v1-", read, merge, lambda d: {"digests": raw(d)})


def test_files_are_merged_past_the_pile_and_damaged_ones_forgotten(tmp_path):
    cache = _cache(tmp_path / "c")
    # a digest ending in NULs survives the round trip (numpy's S type would drop them)
    digests = [np.frombuffer(bytes([i]) * 8 + b"\0" * 8, "S16") for i in range(PILE + 1)]
    for d in digests:
        cache.write(d)
    whole = Path(cache.files()[0]).read_bytes()
    Path(tmp_path / "c" / "v1-cut.npz").write_bytes(whole[: len(whole) // 2])  # a zip cut short
    Path(tmp_path / "c" / "v1-junk.npz").write_bytes(b"not a zip")
    Path(tmp_path / "c" / "v2-other.npz").write_bytes(b"another version: never read")
    known = cache.load()
    assert sorted(known.tolist()) == sorted(d[0] for d in digests)
    assert len(cache.files()) == 1  # merged into one; the damaged two removed
    assert (tmp_path / "c" / "v2-other.npz").exists()
    assert sorted(cache.load().tolist()) == sorted(known.tolist())


def test_positions_finds_each_digest_or_minus_one():
    known = np.array([b"a" * 16, b"c" * 16, b"e" * 16], "S16")
    asked = np.array([b"c" * 16, b"b" * 16, b"e" * 16, b"z" * 16], "S16")
    assert positions(known, asked).tolist() == [1, -1, 2, -1]
    assert positions(np.empty(0, "S16"), asked).tolist() == [-1] * 4
