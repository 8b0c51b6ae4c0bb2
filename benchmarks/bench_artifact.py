"""A built ImageNet train artifact read as members (`engine.inputs.artifact_members`), and
the leak audit's exact-copy pass over it: before and after, side by side.

    python benchmarks/bench_artifact.py [--rows 1281167] [--smoke]

A child process writes a `_files.parquet` of `--rows` rows shaped like an ImageNet train
artifact's (1,000 classes, `train/<wnid>/<wnid>_<n>.JPEG`, every 25th image under `val/`,
both splits declared, sorted by path as `artifact.output` writes it), with planted exact
copies: 12 val images that are train images, 7 train images twice. Then, each in a fresh
process of its own (so each peak RSS is its own):

- the old `artifact_members`, kept below as the baseline (`old_artifact_members`: a
  `MemberRef` per row, `MemberSet.from_refs`, a list of refs again per split);
- the new one (columns straight into blobs and numpy arrays, splits as prefix ranges), then
  the audit's exact-copy pass on its sets (`reports.audit.Members.copies` and the groups it
  lists), with the old grouping (`OldMembers`, np.unique over every member) before it.

It prints seconds, peak RSS and the ratios, whether both ways give the same members (a
digest of every column of every set) and the same groups, and whether the audit finds the
planted copies. --smoke does it all at 20,000 rows: it checks that the script works.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import os
import resource
import tempfile
import time
from typing import Any

import numpy as np

ACROSS, WITHIN = 12, 7  # planted exact copies: val/train pairs, train/train pairs
SPLITS = ("train", "val")


def write_table(path: str, rows: int) -> None:
    """The file table: row i is val if i % 25 == 0; a planted copy has row i + 1's bytes."""
    import duckdb

    stride = max(1, rows // 25 // 16)  # spreads the planted rows over the table
    wnid = "'n' || lpad(CAST(i % 1000 AS VARCHAR), 8, '0')"
    duckdb.sql(f"""COPY (SELECT
            CASE WHEN i % 25 = 0 THEN 'val/' ELSE 'train/' END || {wnid} || '/' || {wnid}
                || '_' || CAST(i AS VARCHAR) || '.JPEG' AS path,
            110000 + i % 50000 AS size,
            md5(CAST(CASE WHEN i % 25 = 0 AND i // 25 % {stride} = 0
                               AND i // 25 // {stride} < {ACROSS} THEN i + 1
                          WHEN i % 25 = 3 AND i // 25 % {stride} = 1
                               AND i // 25 // {stride} < {WITHIN} THEN i + 1
                          ELSE i END AS VARCHAR)) AS xxh3,
            CAST(i % 1000 AS INTEGER) AS label, 'b3f0c7d1e2a4' AS source,
            {wnid} || '/' || {wnid} || '_' || CAST(i AS VARCHAR) || '.JPEG' AS member,
            NULL::BIGINT AS byte_offset, NULL::BIGINT AS record, {wnid} AS class,
            NULL::VARCHAR AS attrs
        FROM range({rows}) t(i) ORDER BY path) TO '{path}' (FORMAT parquet)""")


# ---- the baseline: artifact_members as it was before issue 19, verbatim ----

def old_artifact_members(name: str, key: str, root: str, table: str,
                         marker: Any) -> dict[str, Any]:
    import duckdb

    from dataset_registry.errors import VerifyError
    from dataset_registry.sources.members import MemberRef, MemberSet
    from dataset_registry.stores.base import links_leaving, outside

    repair = f"{name} (key {key}) is damaged; repair it with: registry resolve --repair {name}"
    if not os.path.isfile(table):
        raise VerifyError(f"{table}: missing\n{repair}")
    quoted = table.replace("'", "''")
    try:
        have = set(duckdb.sql(f"SELECT * FROM read_parquet('{quoted}') LIMIT 0").columns)
        extra = ", ".join(f'"{c}"' if c in have else "NULL" for c in ("class", "attrs"))
        rows = duckdb.sql(f"SELECT path, size, member, source, {extra}, xxh3, label FROM "
                          f"read_parquet('{quoted}') WHERE record IS NULL AND member IS NOT "
                          "NULL").fetchall()
    except duckdb.Error as exc:
        raise VerifyError(f"{table}: unreadable as a file table "
                          f"({str(exc).splitlines()[0]})\n{repair}") from None
    leaving = links_leaving(root) if "://" not in root else set()
    for path, *_ in rows:
        why = outside(path, leaving)
        if why:
            raise VerifyError(f"{table}: row {path!r} {why}; refusing to read it\n{repair}")
    changed = f"the artifact changed since it was built; run `registry resolve --repair {name}`"
    refs = [MemberRef(path, f"{root}/{path}", 0, size, member, source, cls or "", attrs or "",
                      xxh3 or "", changed)
            for path, size, member, source, cls, attrs, xxh3, _ in rows]
    values = old_whole_number_labels([(cls, label) for *_, cls, _, _, label in rows]) \
        if marker is not None and marker.label_values else None
    where = f"dataset {name} ({root})"
    sets = {"*": MemberSet.from_refs("*", where, refs, root, changed, values)}
    for split in (marker.splits if marker else None) or ():
        prefix = f"{split}/"
        chosen = [i for i, r in enumerate(refs) if r.name.startswith(prefix)]
        inside = [dataclasses.replace(refs[i], name=refs[i].name[len(prefix):])
                  for i in chosen]
        sets[split] = MemberSet.from_refs(
            split, f"{where}, split {split}", inside, f"{root}/{split}", changed,
            values[np.array(chosen, dtype=np.int64)] if values is not None else None)
    return sets


def old_whole_number_labels(rows: list[tuple[str | None, int | None]]) -> np.ndarray | None:
    if not any(cls for cls, _ in rows) or any(
            cls and (label is None or str(label) != cls) for cls, label in rows):
        return None
    return np.array([label if cls else -1 for cls, label in rows], dtype=np.int64)


def old_members_class() -> type:
    """reports.audit.Members with its grouping as it was (np.unique over every member)."""
    from dataset_registry.reports.audit import Copies, Members

    class OldMembers(Members):
        def copies(self) -> Copies:
            order = np.argsort(self.digests, kind="stable")
            ordered = self.digests[order]
            new = np.r_[True, ordered[1:] != ordered[:-1]] if len(order) \
                else np.empty(0, bool)
            group = np.cumsum(new) - 1
            start = np.nonzero(new)[0]
            sizes = np.diff(np.r_[start, len(order)])
            content = np.empty(len(order), np.int64)
            content[order] = group
            pairs = np.unique(group * len(self.splits) + self.split_of[order])
            reach = np.bincount(pairs // max(1, len(self.splits)), minlength=len(start))
            first = order[start]
            by_first = np.argsort(first, kind="stable")
            across = by_first[reach[by_first] > 1]
            within = by_first[(reach[by_first] == 1) & (sizes[by_first] > 1)]
            return Copies(content, first, sizes, across, within, start, order)

    return OldMembers


# ---- the measurements, each in a process of its own ----

def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def fingerprint(sets: dict[str, Any]) -> str:
    """A digest of every column of every set, and what each set says of itself."""
    import xxhash

    h = xxhash.xxh3_128()
    for split in sorted(sets):
        m = sets[split]
        for part in (m.split, m.where, m.root, m.path_from, m.changed, repr(m.sources)):
            h.update(repr(part).encode())
        for column in (m.names, m.origins, m.labels, m.attrs):
            h.update(column.lines())
        for array in (m.offsets, m.sizes, m.source_codes, m.digests, m.values):
            h.update(b"-" if array is None else np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


def measure(way: str, root: str, table: str, out: Any) -> None:
    import duckdb  # noqa: F401 (both ways use it: its import is not what they cost)

    from dataset_registry.artifact.marker import Marker
    from dataset_registry.engine.inputs import artifact_members
    from dataset_registry.reports.audit import LIMIT, Members

    marker = Marker(key="k", digest="", files=0, bytes=0, skipped=0, splits=SPLITS)
    read = old_artifact_members if way == "old" else artifact_members
    result: dict[str, Any] = {"imports": peak_mb()}
    started = time.perf_counter()
    sets = read("train1k", "k", root, table, marker)
    result["seconds"], result["peak"] = time.perf_counter() - started, peak_mb()
    if way == "new":
        chosen = {s: sets[s] for s in SPLITS}  # what the audit of a dataset compares
        found = {}
        for label, members in (("old copies", old_members_class()), ("copies", Members)):
            started = time.perf_counter()
            table_ = members(chosen)
            copies = table_.copies()
            groups = [[table_.group(copies, g) for g in kind[:LIMIT].tolist()]
                      for kind in (copies.across, copies.within)]
            result[label] = time.perf_counter() - started, peak_mb()
            found[label] = copies, groups
        (a, ga), (b, gb) = found["old copies"], found["copies"]
        result["same groups"] = ga == gb and all(
            np.array_equal(x, y) for x, y in zip(dataclasses.astuple(a),
                                                 dataclasses.astuple(b), strict=True))
        result["found"] = len(b.across), len(b.within), {
            len(g["splits"]) for g in gb[0]}, {g["copies"] for g in gb[0] + gb[1]}
    result["fingerprint"] = fingerprint(sets)  # last: its copies are no part of the peaks
    out.put(result)


def run(way: str, root: str, table: str) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=measure, args=(way, root, table, queue))
    child.start()
    result = queue.get()
    child.join()
    assert child.exitcode == 0, f"the {way} way failed"
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_281_167)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    rows = 20_000 if args.smoke else args.rows

    with tempfile.TemporaryDirectory(prefix="bench-artifact-") as folder:
        table, root = os.path.join(folder, "_files.parquet"), os.path.join(folder, "files")
        os.mkdir(root)
        child = multiprocessing.get_context("spawn").Process(target=write_table,
                                                             args=(table, rows))
        child.start()
        child.join()
        assert child.exitcode == 0, "writing the table failed"
        old, new = run("old", root, table), run("new", root, table)
    print(f"{rows:,} file rows (ImageNet train-shaped: 1,000 classes, splits train and "
          f"val), {os.cpu_count()} cores, each way in a fresh process "
          f"({new['imports']:.0f} MB after imports)")
    print(f"{'what':<44}{'seconds':>9}{'peak RSS MB':>13}")
    for label, (seconds, peak) in (
            ("artifact_members, old (a MemberRef per row)", (old["seconds"], old["peak"])),
            ("artifact_members (columns)", (new["seconds"], new["peak"])),
            ("audit exact copies, old grouping", new["old copies"]),
            ("audit exact copies", new["copies"])):
        print(f"{label:<44}{seconds:>9.2f}{peak:>13.0f}")
    print(f"ratio old / new artifact_members: {old['seconds'] / new['seconds']:.1f}x the time, "
          f"{old['peak'] / new['peak']:.1f}x the peak RSS")
    print(f"ratio old / new exact-copy grouping: "
          f"{new['old copies'][0] / new['copies'][0]:.1f}x the time")
    print(f"same members both ways: {old['fingerprint'] == new['fingerprint']}")
    print(f"same groups both ways: {new['same groups']}")
    across, within, reach, sizes = new["found"]
    print(f"copies as planted: {(across, within, reach, sizes) == (ACROSS, WITHIN, {2}, {2})} "
          f"({across} across splits, {within} within one)")


if __name__ == "__main__":
    main()
