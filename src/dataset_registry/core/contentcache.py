"""A cache of facts about contents, by xxh3: a folder of npz files, each written whole (a
temporary file renamed over), read together, merged into one once they pile up.

What a fact is belongs to the caller (the pHash of an image, an image check's verdict): it
says how to read one file's arrays (`read`), how to merge what several held (`merge`) and
what arrays to write for a merged value (`arrays`). A damaged file is only a cache: it is
removed and its contents are worked out again. Digests are raw xxh3-128s as numpy `S16`,
saved as (n, 16) uint8 (numpy's S type would drop trailing NULs).
"""

from __future__ import annotations

import contextlib
import glob
import os
import uuid
import zipfile
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import numpy as np

from .atomic import atomic_path

PILE = 16  # files merged into one once there are more
T = TypeVar("T")
DAMAGED = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)  # a truncated npz: zip


def positions(known: np.ndarray, digests: np.ndarray) -> np.ndarray:
    """The position of each of `digests` in the sorted, unique `known`, -1 where absent."""
    at = np.searchsorted(known, digests)
    inside = at < len(known)
    found = np.zeros(len(digests), dtype=bool)
    found[inside] = known[at[inside]] == digests[inside]
    return np.where(found, at, -1)


def raw(digests: np.ndarray) -> np.ndarray:
    """`S16` digests as an (n, 16) uint8 array, as they are saved."""
    return np.frombuffer(np.ascontiguousarray(digests).tobytes(), np.uint8).reshape(-1, 16)


def digests_of(saved: np.ndarray) -> np.ndarray:
    """What `raw` saved, as `S16` digests again."""
    return np.ascontiguousarray(saved, np.uint8).reshape(-1, 16).view("S16").ravel()


class ContentCache(Generic[T]):
    """`<folder>/<prefix>*.npz`; `read(npz) -> part`, `merge([part]) -> T`,
    `arrays(T) -> {name: array}` (what `write` saves)."""

    def __init__(self, folder: str, prefix: str, read: Callable[[Any], Any],
                 merge: Callable[[list[Any]], T], arrays: Callable[[T], dict[str, np.ndarray]]
                 ) -> None:
        self.folder, self.prefix = folder, prefix
        self._read, self._merge, self._arrays = read, merge, arrays

    def files(self) -> list[str]:
        return sorted(glob.glob(os.path.join(glob.escape(self.folder), f"{self.prefix}*.npz")))

    def load(self) -> T:
        """Every file's facts merged; past `PILE` files, written back as one."""
        parts, read = [], []
        for path in self.files():
            try:
                with np.load(path) as z:
                    parts.append(self._read(z))
                read.append(path)
            except FileNotFoundError:  # merged away by another process meanwhile
                continue
            except DAMAGED:
                with contextlib.suppress(OSError):
                    os.unlink(path)
        known = self._merge(parts)
        if len(read) > PILE:
            self.write(known)
            for path in read:
                with contextlib.suppress(OSError):
                    os.unlink(path)
        return known

    def write(self, known: T) -> None:
        os.makedirs(self.folder, exist_ok=True)
        target = os.path.join(self.folder, f"{self.prefix}{uuid.uuid4().hex}.npz")
        with atomic_path(target) as tmp, open(tmp, "wb") as f:
            np.savez(f, **self._arrays(known))
