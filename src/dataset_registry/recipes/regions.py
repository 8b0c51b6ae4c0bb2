"""Files several tasks write together, each its planned region (`Output.write_at`): the
coordinator hashes them region by region, in plan order, as tasks finish.

recordio's `.rec`, downscale's `images.npy` and webdataset's shards past one task's
samples are written this way: the coordinator reads each region back from the page
cache while later tasks still write, instead of re-reading the whole file after the
last one (3.2 of 7.5 s at 100,000 recordio images).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..artifact.output import Output


class RegionHasher:
    """Hashes `path`'s `tasks` regions in order (region `index` given its task's result:
    `start`, `size`, `in_place`), then tells `out` (`Output.hashed`). Gives up, and
    whoever adds the file hashes it from disk, if a task could not write in place or the
    regions are not back to back."""

    def __init__(self, out: Output, path: str, tasks: int) -> None:
        import xxhash

        self.out, self.path, self.tasks = out, path, tasks
        self.hasher = xxhash.xxh3_128()
        self.next, self.size = 0, 0
        self.waiting: dict[int, dict[str, Any]] = {}
        self.broken = False

    def __call__(self, index: int, result: dict[str, Any]) -> None:
        if self.broken or not result["in_place"]:
            self.broken = True
            return
        self.waiting[index] = result
        while self.next in self.waiting:
            region = self.waiting.pop(self.next)
            if region["start"] != self.size:  # not back to back: left to whoever adds the file
                self.broken = True
                return
            self._hash(region["start"], region["size"])
            self.next += 1
        if self.next == self.tasks:
            self.out.hashed(self.path, self.size, self.hasher.hexdigest())

    def _hash(self, start: int, size: int) -> None:
        import mmap

        if size == 0:
            return
        aligned = start - start % mmap.ALLOCATIONGRANULARITY
        with open(self.out.target(self.path), "rb") as f, \
                mmap.mmap(f.fileno(), size + start - aligned, offset=aligned,
                          access=mmap.ACCESS_READ) as view:
            self.hasher.update(memoryview(view)[start - aligned:])
        self.size += size
