"""A dataset card: what a person wants to know of one built dataset, on one page.

`gather` reads it all (the marker, the file table and skipped table through DuckDB, the
lineage from the engine, the job runs that read it from the catalog, a few thumbnails a
class) into a `Card`; `card_html.render` makes the page. Nothing is written anywhere.

Splits: the splits the artifact declares (`sample`'s), else a row's top folder where it
is not the row's class (`train/cat/1.png` is split train, `cat/1.png` none). Classes: a
row's class name, else its label number; rows from no source, of no class or label, are
files, not images (`classes.txt`, a whole shard).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..artifact.marker import FILES, SKIPPED
from ..engine import lineage as lineage_
from ..errors import BadInputError, RegistryError, VerifyError
from .thumbs import Sample, Thumb, Thumbnailer

if TYPE_CHECKING:
    from ..engine.lineage import LineageNode
    from ..engine.project import Project

THUMB_CLASSES = 60  # classes shown with thumbnails; past it, evenly spaced by name
FEW_CLASSES = 12  # up to this many classes get PER_FEW thumbnails each, else PER_MANY
PER_FEW, PER_MANY = 6, 3
LISTED = 50  # skipped images and runs listed on the page (the rest counted)


@dataclass
class Run:
    run_id: str
    job: str
    flavor: str
    action: str
    created_at: str
    role: str


@dataclass
class Card:
    name: str
    key: str
    digest: str
    uri: str
    description: str
    recipe: str
    version: int
    params: Mapping[str, Any]
    card: Mapping[str, Any]
    source_cards: dict[str, dict[str, Any]]
    synthetic: bool
    built: Mapping[str, Any]
    files: int
    bytes: int
    lineage: LineageNode
    sources: list[Mapping[str, Any]]
    splits: list[str]  # "" : rows in no split
    classes: list[tuple[str, dict[str, int]]]  # by total count, largest first
    images: int = 0
    kinds: list[tuple[str, int, int]] = field(default_factory=list)  # extension, files, bytes
    shards: tuple[int, int, int, int, int] | None = None  # shards, records, min, median, max
    skipped: int = 0
    skipped_rows: list[tuple[str, str, str]] = field(default_factory=list)
    skipped_reasons: list[tuple[str, int]] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)
    runs_total: int = 0
    runs_note: str = ""
    thumbs: list[tuple[str, list[Thumb]]] = field(default_factory=list)
    thumb_note: str = ""
    audit: dict[str, Any] | None = None  # audit.audit's report (None: see audit_note)
    audit_note: str = ""


def report(project: Project, name: str, *, near: bool = False) -> str:
    """The dataset card of built dataset `name`, as one self-contained HTML page. `near`:
    its audit compares near copies too (decoding each image once, then cached)."""
    from .card_html import render

    return render(gather(project, name, near=near))


def gather(project: Project, name: str, *, near: bool = False) -> Card:
    """Everything the card shows; BadInputError (saying how to build it) if `name` is not
    a built dataset."""
    import duckdb

    node = project.manifests.get(name)  # unknown: ManifestError naming the manifests
    if node.kind != "dataset":
        raise BadInputError(f"{name} is a {node.kind}, not a dataset: a card shows a built "
                            f"dataset (registry show {name} shows what it is)")
    built = project.resolver.built(name)  # not built: BadInputError naming the command
    marker = built.marker
    tables = project.store.tables(built.key)
    upstream = upstream_sources(project, name)
    sources = fingerprints(project, upstream)
    card = Card(
        name=name, key=built.key, digest=marker.digest, uri=built.uri,
        description=node.description, recipe=marker.recipe, version=marker.version,
        params=marker.params, card=marker.card,
        source_cards={n.name: dict(n.card) for n in upstream if n.card},
        synthetic=marker.synthetic, built=marker.built, files=marker.files,
        bytes=marker.bytes, lineage=lineage_.lineage(project, name),
        sources=list(marker.sources), splits=[], classes=[])
    con = duckdb.connect(config={"memory_limit": "256MB"})
    table = f"{tables}/{FILES}"
    try:
        _open_table(con, table, marker.splits)
        _counts(con, card)
        _files(con, card)
        _thumbs(con, card, Thumbnailer(project, marker.key, sources))
        if marker.skipped:
            table = f"{tables}/{SKIPPED}"
            _skipped(con, card, table, sources)
    except duckdb.Error as exc:  # damaged where the marker's checks do not look
        raise VerifyError(f"{table}: unreadable ({str(exc).splitlines()[0]}); repair it "
                          f"with: registry resolve --repair {name}") from None
    finally:
        con.close()
    _runs(project, card)
    _audit(project, card, near)
    return card


def _audit(project: Project, card: Card, near: bool) -> None:
    """The leak audit of the card's dataset: exact copies from its file table (no image
    read); with `near`, near copies and undecodable images too."""
    from .audit import audit

    try:
        card.audit = audit(project, card.name, near=near)
    except (BadInputError, VerifyError) as exc:  # e.g. images inside shards, or damage
        card.audit_note = f"Not audited: {exc}"  # (the rest of the page still shows)


def _open_table(con: Any, table: str, declared: tuple[str, ...] | None) -> None:
    """Views over the file table: `rows` (with `cls`, the class or label) and `images`
    (with `split`)."""
    quoted = table.replace("'", "''")
    have = set(con.sql(f"SELECT * FROM read_parquet('{quoted}') LIMIT 0").columns)
    cls = '"class"' if "class" in have else "NULL"  # tables from before class names
    con.execute("CREATE VIEW rows AS SELECT path, size, xxh3, label, source, member, "
                f"byte_offset, record, coalesce({cls}, CAST(label AS VARCHAR), '') AS cls "
                f"FROM read_parquet('{quoted}')")
    top = "split_part(path, '/', 1)"
    if declared:
        names = ", ".join("'" + s.replace("'", "''") + "'" for s in declared)
        split = f"CASE WHEN {top} IN ({names}) THEN {top} ELSE '' END"
    else:
        split = f"CASE WHEN contains(path, '/') AND {top} <> cls THEN {top} ELSE '' END"
    con.execute(f"CREATE VIEW images AS SELECT *, {split} AS split FROM rows WHERE "
                "member IS NOT NULL OR cls <> ''")


def _counts(con: Any, card: Card) -> None:
    rows = con.execute("SELECT cls, split, count(*) FROM images GROUP BY ALL").fetchall()
    by_class: dict[str, dict[str, int]] = {}
    for cls, split, n in rows:
        by_class.setdefault(cls, {})[split] = n
    card.splits = sorted({split for _, split, _ in rows})
    card.classes = sorted(by_class.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
    card.images = sum(n for *_, n in rows)


def _files(con: Any, card: Card) -> None:
    card.kinds = [(ext or "(none)", n, int(size)) for ext, n, size in con.execute(
        "SELECT lower(regexp_extract(path, '\\.([^./]+)$', 1)) AS ext, count(*), sum(size) "
        "FROM rows WHERE record IS NULL GROUP BY ext ORDER BY 3 DESC, 1").fetchall()]
    shards = con.execute(
        "SELECT count(*), sum(n), min(n), CAST(median(n) AS BIGINT), max(n) FROM "
        "(SELECT path, count(*) AS n FROM rows WHERE record IS NOT NULL GROUP BY path)"
    ).fetchone()
    if shards[0]:
        card.shards = tuple(int(v) for v in shards)  # type: ignore[assignment]


def _skipped(con: Any, card: Card, table: str, names: dict[str, str]) -> None:
    quoted = table.replace("'", "''")
    con.execute(f"CREATE VIEW skipped AS SELECT * FROM read_parquet('{quoted}')")
    card.skipped = con.execute("SELECT count(*) FROM skipped").fetchone()[0]
    card.skipped_reasons = con.execute(
        "SELECT split_part(reason, ':', 1) AS why, count(*) FROM skipped GROUP BY why "
        "ORDER BY 2 DESC, 1").fetchall()
    card.skipped_rows = [
        (member, names.get(source) or source or "", reason) for member, source, reason
        in con.execute(f"SELECT member, source, reason FROM skipped ORDER BY member "
                       f"LIMIT {LISTED}").fetchall()]


def _thumbs(con: Any, card: Card, thumbnailer: Thumbnailer) -> None:
    """A few images of each class (of THUMB_CLASSES classes at most, evenly spaced by
    name), the same ones every time: the first by content hash."""
    names = sorted(cls for cls, _ in card.classes)
    if not names:
        return
    chosen = names if len(names) <= THUMB_CLASSES else \
        [names[i * len(names) // THUMB_CLASSES] for i in range(THUMB_CLASSES)]
    per = PER_FEW if len(names) <= FEW_CLASSES else PER_MANY
    con.execute("CREATE TEMP TABLE chosen (cls VARCHAR)")
    con.executemany("INSERT INTO chosen VALUES (?)", [[c] for c in chosen])
    rows = con.execute(
        "SELECT cls, path, size, xxh3, byte_offset, record, member, source FROM "
        "(SELECT *, row_number() OVER (PARTITION BY cls ORDER BY xxh3, path, record) AS k "
        f"FROM images WHERE cls IN (SELECT cls FROM chosen)) WHERE k <= {per} "
        "ORDER BY cls, k").fetchall()
    by_class: dict[str, list[Thumb]] = {c: [] for c in chosen}
    for row in rows:
        by_class[row[0]].append(thumbnailer.thumb(Sample(*row)))
    card.thumbs = list(by_class.items())
    if len(chosen) < len(names):
        card.thumb_note = (f"{len(chosen):,} of the {len(names):,} classes shown, evenly "
                           f"spaced by name, {per} images each")
    shown = sum(1 for thumbs in by_class.values() for t in thumbs if t.uri)
    missing = sum(len(thumbs) for thumbs in by_class.values()) - shown
    if missing:
        card.thumb_note += ("; " if card.thumb_note else "") + \
            f"{missing} image(s) could not be shown (hover over one to see why)"


def _runs(project: Project, card: Card) -> None:
    """The job runs that read this artifact, newest first, from the catalog (a catalog
    that cannot be read leaves a note, not a failed card)."""
    try:
        _, rows = project.catalog.query(
            "SELECT r.run_id, r.job, r.flavor, r.action, "
            "strftime(r.created_at, '%Y-%m-%d %H:%M:%S'), i.role, count(*) OVER () "
            "FROM runs r JOIN run_inputs i USING (run_id) WHERE i.key = ? "
            f"ORDER BY r.created_at DESC, r.run_id LIMIT {LISTED}", [card.key])
    except RegistryError as exc:
        card.runs_note = f"the catalog could not be read: {exc}"
        return
    card.runs = [Run(*(str(v) for v in row[:6])) for row in rows]
    card.runs_total = rows[0][6] if rows else 0


def upstream_sources(project: Project, name: str) -> list[Any]:
    """The source nodes `name` is made from, through every dataset between, by name."""
    found: dict[str, Any] = {}
    todo, seen = [name], set()
    while todo:
        node = project.manifests.get(todo.pop())
        if node.name in seen:
            continue
        seen.add(node.name)
        if node.kind == "dataset":
            todo += node.inputs.values()
        elif node.kind == "source":
            found[node.name] = node
    return [found[n] for n in sorted(found)]


def fingerprints(project: Project, sources: list[Any]) -> dict[str, str]:
    """{fingerprint: source name} of `sources` whose key is known here (set, or locked)."""
    known = {}
    for node in sources:
        try:
            known[project.key(node.name)] = node.name
        except RegistryError:  # neither set here nor in registry.lock
            continue
    return known


def as_text(value: Any) -> str:
    """A param or meta value as one line: strings as they are, the rest as JSON."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
