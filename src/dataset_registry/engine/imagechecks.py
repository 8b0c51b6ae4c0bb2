"""Image checks paid once: each content's verdict (usable, or why refused), by xxh3.

A build that checks its images (`validate_images`) reads the cache, `<state>/imagechecks/`,
before planning and marks every input member whose content it knows (`MemberSet.checks`):
the tasks carry those verdicts to whichever worker runs them and skip the decode
(recipes/imagecheck.py). What the tasks did decode comes back in the build's part files
(`Output.image_checked`) and is added after the build. Workers never see the state folder.

Files are npz, each written whole (a temporary file renamed over), read together and
merged once they pile up, as the pHash cache's (reports/phash.py). The cache is named by
Pillow's version: another decoder may judge the same bytes otherwise. A damaged file is
only a cache: it is removed, and its images are decoded again.
"""

from __future__ import annotations

import contextlib
import csv
import glob
import io
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..artifact.marker import PARTS
from ..artifact.output import CHECKS
from ..core.contentcache import ContentCache, digests_of, positions, raw
from ..sources.members import CHECKED_OK, REFUSED, MemberSet, StrColumn, hex_digests


@dataclass
class Verdicts:
    """`digests` (sorted, unique, S16 raw xxh3s), and why each refused one was refused,
    by position (the rest are usable)."""

    digests: np.ndarray
    refused: dict[int, str]

    def find(self, digests: np.ndarray) -> np.ndarray:
        """The position of each of `digests` here, -1 where it is not known."""
        return positions(self.digests, digests)


class ImageChecks:
    """The cache: `<state>/imagechecks/v1-pillow<version>-*.npz`."""

    VERSION = "v1"  # raised whenever what a verdict means changes (imaging.check_image)

    def __init__(self, state_dir: str) -> None:
        import PIL

        self.folder = os.path.join(state_dir, "imagechecks")
        self.prefix = f"{self.VERSION}-pillow{PIL.__version__}-"
        self._files = ContentCache(self.folder, self.prefix, _read, _merge, _arrays)

    def files(self) -> list[str]:
        return self._files.files()

    def load(self) -> Verdicts:
        return self._files.load()

    def add(self, rows: Iterable[tuple[str, str]]) -> int:
        """Keep the verdicts `rows` ((hex xxh3, why)); how many were new to the file."""
        verdict = dict(rows)
        return self._keep([_part(verdict)]) if verdict else 0

    def mark(self, images: Mapping[str, Mapping[str, MemberSet]],
             also: Iterable[tuple[str, str]] = ()) -> None:
        """Give every input member whose content has a verdict here, or in `also` ((hex
        xxh3, why): verdicts just reached, which an unwritable cache may not hold), that
        verdict."""
        sets = [s for by_split in images.values() for s in by_split.values()
                if s.digests is not None and len(s)]
        if not sets:
            return
        known = self.load()
        extra = dict(also)
        if extra:  # the cache's verdict first, as a merge of its files keeps it
            known = _merge([(known.digests, known.refused), _part(extra)])
        if not len(known.digests):
            return
        for members in sets:
            digests = np.ascontiguousarray(members.digests).view("S16").ravel()
            at = known.find(digests)
            states = np.where(at >= 0, CHECKED_OK, 0).astype(np.uint8)
            refused = {i: known.refused[int(at[i])] for i in np.flatnonzero(at >= 0).tolist()
                       if int(at[i]) in known.refused} if known.refused else {}
            why = None
            if refused:
                states[list(refused)] = REFUSED
                # one line each (a StrColumn's entries end at a newline)
                why = StrColumn.from_list([refused.get(i, "").replace("\n", " ")
                                           for i in range(len(members))])
            members.checks, members.refusals = states, why

    def collect_meanwhile(self, staging: str, parts: VerdictParts | None = None
                          ) -> threading.Thread:
        """Keep the verdicts a build's tasks reached: its part files read here (those
        `parts` read already are not read again; `finalize` takes the rest out of staging
        next), then merged and written on a thread while the build's file table is made
        (13-14 ms at 96,000 images, 2 cores). Only a cache: what fails there is left."""
        found = (parts or VerdictParts(staging)).rest()

        def keep() -> None:
            with contextlib.suppress(OSError, ValueError):
                self._keep(found)

        keeping = threading.Thread(target=keep, name="registry-image-checks")
        keeping.start()
        return keeping

    def _keep(self, parts: list[tuple[np.ndarray, dict[int, str]]]) -> int:
        """Write the verdicts of `parts` ((S16 digests, refusals by position) each), if
        they hold any; how many contents they judged."""
        found = _merge(parts)
        if len(found.digests):
            self._files.write(found)
        return len(found.digests)


class VerdictParts:
    """The verdicts in a build's part files, each read once: as its task's result comes in
    (`read`: the coordinator waits for the next result meanwhile; at 96,000 images the
    reading took 0.09 s, after the last task), the rest at the end (`rest`: a remote
    store's parts, or a killed build's)."""

    def __init__(self, staging: str) -> None:
        self.folder = os.path.join(staging, PARTS)
        self.parts: list[tuple[np.ndarray, dict[int, str]]] = []
        self.done: set[str] = set()

    def read(self, name: str) -> None:
        """The verdicts in part `name` (under the build's parts), if it holds any."""
        if not name.endswith(f".{CHECKS}") or name in self.done:
            return
        try:
            f = open(os.path.join(self.folder, name), "rb")  # noqa: SIM115
        except FileNotFoundError:
            return
        with f:
            self.parts.append(_part_read(f.read()))
        self.done.add(name)

    def rest(self) -> list[tuple[np.ndarray, dict[int, str]]]:
        """Every part's verdicts ((S16 digests, refusals by position) each), once the
        parts not read yet are."""
        for path in sorted(glob.glob(os.path.join(glob.escape(self.folder), f"*.{CHECKS}"))):
            self.read(os.path.basename(path))
        return self.parts


_USABLE_ROW = 35  # bytes: `<32 hex digits>,` and the csv writer's CRLF (`Output.image_checked`)


def _part_read(data: bytes) -> tuple[np.ndarray, dict[int, str]]:
    """A part file's verdicts, rows `xxh3,why`. Where every row says usable (the rule),
    they are read at once; else row by row, as csv (a refusal may be quoted). Read row by
    row, 96,000 rows took 0.05-0.1 s of the coordinator, as the workers ran."""
    count = len(data) // _USABLE_ROW
    if count and count * _USABLE_ROW == len(data):
        rows = np.frombuffer(data, np.uint8).reshape(count, _USABLE_ROW)
        if (rows[:, 32:] == np.frombuffer(b",\r\n", np.uint8)).all():
            try:  # (what is not hex is refused: then row by row, as below)
                return hex_digests(rows[:, :32]).view("S16"), {}
            except ValueError:
                pass
    text = io.StringIO(data.decode("utf-8"), newline="")
    return _part(dict((r[0], r[1]) for r in csv.reader(text) if len(r) == 2 and len(r[0]) == 32))


def _part(verdict: dict[str, str]) -> tuple[np.ndarray, dict[int, str]]:
    """Verdicts by hex xxh3 as (S16 digests, refusals by position)."""
    digests = np.frombuffer(b"".join(bytes.fromhex(h) for h in verdict), "S16")
    return digests, {i: w for i, w in enumerate(verdict.values()) if w}


def _read(z: Any) -> tuple[np.ndarray, dict[int, str]]:
    digests = digests_of(z["digests"])
    refused = dict(zip(z["refused_at"].tolist(), map(str, z["why"]), strict=True))
    if any(not 0 <= i < len(digests) for i in refused):
        raise ValueError("a refusal past the digests")  # damaged: the file is dropped
    return digests, refused


def _arrays(known: Verdicts) -> dict[str, np.ndarray]:
    at = sorted(known.refused)  # only the few refused carry a reason: no wide string array
    return {"digests": raw(known.digests), "refused_at": np.array(at, dtype=np.int64),
            "why": np.array([known.refused[i] for i in at], dtype=str)}


def _merge(parts: list[tuple[np.ndarray, dict[int, str]]]) -> Verdicts:
    """One `Verdicts` of several files' (digests, refusals by position); a content in
    two keeps the first one's verdict (both came from the same check)."""
    digests = np.concatenate([d for d, _ in parts]) if parts else np.empty(0, "S16")
    if not len(digests):  # (no file, or empty ones: a part a crash left empty)
        return Verdicts(np.empty(0, "S16"), {})
    refused, start = {}, 0
    for d, r in parts:
        refused.update({start + i: w for i, w in r.items()})
        start += len(d)
    order = np.argsort(digests, kind="stable")
    keep = order[np.r_[True, digests[order][1:] != digests[order][:-1]]]
    return Verdicts(digests[keep], {new: refused[old] for new, old in enumerate(keep.tolist())
                                    if old in refused})
