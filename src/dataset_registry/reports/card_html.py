"""The dataset card as one static HTML page: styles inline, images as data: URIs, no script,
and a Content-Security-Policy that lets the page load nothing from anywhere (a link, the
homepage, is only followed when clicked). Every string from a user (names, classes, card
fields, params, members, reasons) goes through `html.escape`.

Counts are CSS bars, sorted largest first, in a box of fixed height that scrolls: the same
page reads for 5 classes and for 1,000.
"""

from __future__ import annotations

import datetime
import statistics
from html import escape
from typing import TYPE_CHECKING, Any

from .. import __version__
from .card import as_text
from .card_audit import audit_section

if TYPE_CHECKING:
    from ..engine.lineage import LineageNode
    from .card import Card
    from .thumbs import Thumb

CSS = """
:root{--ink:#1d2330;--dim:#5b6474;--line:#dde1e8;--bar:#3f6fd8;--bg:#f6f7f9;--warn:#b4540a}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:var(--ink);background:var(--bg)}
header{background:#fff;border-bottom:1px solid var(--line);padding:20px 28px}
h1{margin:0 0 4px;font-size:26px;word-break:break-all}
h2{font-size:17px;margin:0 0 10px}h3{font-size:14px;margin:14px 0 6px}
main{padding:18px 28px;display:grid;gap:18px;grid-template-columns:minmax(0,2fr) minmax(0,3fr)}
section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:14px 16px;
min-width:0}
section.wide{grid-column:1/-1}
@media (max-width:900px){main{grid-template-columns:minmax(0,1fr)}}
code,pre{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
pre{white-space:pre-wrap;background:var(--bg);padding:8px;border-radius:6px;margin:4px 0}
.desc{color:var(--dim);margin:0 0 10px}
.badge{display:inline-block;font-size:12px;padding:1px 8px;border-radius:10px;
background:#fde8d4;color:var(--warn);vertical-align:middle;margin-left:8px}
.facts{display:flex;flex-wrap:wrap;gap:6px 22px;list-style:none;padding:0;margin:8px 0 0}
.facts b{font-size:18px}
dl.kv{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:3px 14px;margin:0}
dl.kv dt{color:var(--dim)}dl.kv dd{margin:0;word-break:break-word}
table{border-collapse:collapse;width:100%}
td,th{padding:3px 8px 3px 0;text-align:left;vertical-align:top;border-bottom:1px solid var(--line)}
th{color:var(--dim);font-weight:600}
td.r,th.r{text-align:right}
.scroll{max-height:420px;overflow-y:auto;border:1px solid var(--line);border-radius:6px}
.scroll.tall{max-height:640px;padding:6px}
table.bars td{border:0;padding:1px 6px}
table.bars td.c{max-width:180px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
table.bars td.b{width:60%}
table.bars i{display:block;height:12px;background:var(--bar);border-radius:2px;min-width:1px}
table.bars td.n{text-align:right;font-variant-numeric:tabular-nums}
.note{color:var(--dim);font-size:13px;margin:4px 0 8px}
.leak{color:var(--warn)}.clean{color:#1f6b33}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(212px,1fr));gap:10px}
figure{margin:0;border:1px solid var(--line);border-radius:6px;padding:6px;min-width:0}
figcaption{font-size:12px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
figcaption span{color:var(--dim)}
.imgs{display:flex;flex-wrap:wrap;gap:4px;margin-top:4px}
.imgs img,.imgs .missing{width:64px;height:64px;object-fit:contain;background:var(--bg);
border-radius:3px}
.imgs img.px{image-rendering:pixelated}
.imgs .missing{display:flex;align-items:center;justify-content:center;color:var(--warn)}
ul.tree{list-style:none;padding-left:0;margin:0}ul.tree ul{list-style:none;padding-left:20px;
border-left:1px dashed var(--line);margin-left:6px}
ul.tree li{margin:3px 0}.role,.kind{color:var(--dim)}
.status{font-size:12px;padding:0 6px;border-radius:8px;background:#e3f3e6;color:#1f6b33}
.status.other{background:#fde8d4;color:var(--warn)}
"""


def render(card: Card) -> str:
    classes = len(card.classes)
    license_ = card.card.get("license") or "not stated"
    facts = [f"<b>{card.images:,}</b> images", f"<b>{classes:,}</b> classes",
             f"<b>{len([s for s in card.splits if s]) or 1}</b> "
             f"split{'' if len([s for s in card.splits if s]) <= 1 else 's'}",
             f"<b>{card.files:,}</b> files, {size(card.bytes)}",
             f"<b>{card.skipped:,}</b> skipped", f"license: <b>{escape(as_text(license_))}</b>"]
    badge = '<span class="badge">synthetic stand-in</span>' if card.synthetic else ""
    header = (
        f'<header><h1 id="name">{escape(card.name)}{badge}</h1>'
        + (f'<p class="desc">{escape(card.description)}</p>' if card.description else "")
        + _kv([("key", f"<code>{escape(card.key)}</code>"),
               ("digest", f"<code>{escape(card.digest)}</code>"),
               ("recipe", f"{escape(card.recipe)} (version {card.version})"),
               ("location", f"<code>{escape(card.uri)}</code>")])
        + '<ul class="facts">' + "".join(f"<li>{f}</li>" for f in facts) + "</ul></header>")
    sections = [_classes(card), _samples(card), _audit(card), _card(card), _recipe(card),
                _files(card), _lineage(card), _skipped(card), _runs(card)]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
            "img-src data:; style-src 'unsafe-inline'\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<meta name="generator" content="dataset-registry {escape(__version__)}">'
            f"<title>{escape(card.name)} · dataset card</title><style>{CSS}</style></head>\n"
            f"<body>{header}\n<main>\n" + "\n".join(sections) + "\n</main></body></html>\n")


def _section(ident: str, title: str, body: str, *, wide: bool = True) -> str:
    cls = ' class="wide"' if wide else ""
    return f'<section id="{ident}"{cls}><h2>{escape(title)}</h2>{body}</section>'


def _kv(pairs: list[tuple[str, str]]) -> str:
    """A definition list; values are HTML already escaped by the caller."""
    return '<dl class="kv">' + "".join(f"<dt>{escape(k)}</dt><dd>{v}</dd>"
                                       for k, v in pairs) + "</dl>"


def _table(head: list[str], rows: list[list[str]], right: frozenset[int] = frozenset()) -> str:
    """A table; cells are HTML already escaped by the caller. `right`: numeric columns."""
    def cell(tag: str, i: int, text: str) -> str:
        return f'<{tag} class="r">{text}</{tag}>' if i in right else f"<{tag}>{text}</{tag}>"

    return ("<table><tr>" + "".join(cell("th", i, escape(h)) for i, h in enumerate(head))
            + "</tr>" + "".join("<tr>" + "".join(cell("td", i, c) for i, c in enumerate(row))
                                + "</tr>" for row in rows) + "</table>")


def _classes(card: Card) -> str:
    if not card.classes:
        return _section("classes", "Classes", '<p class="note">No images: this artifact holds '
                        "files only.</p>", wide=False)
    parts = []
    for split in card.splits:
        counts = sorted(((n[split], cls) for cls, n in card.classes if split in n),
                        key=lambda c: (-c[0], c[1]))
        top = counts[0][0]
        values = [n for n, _ in counts]
        title = escape(split) if split else "all images" + \
            (" (in no split)" if len(card.splits) > 1 else "")
        parts.append(
            f"<h3>{title} <small>{sum(values):,} images, {len(counts):,} classes</small></h3>"
            f'<p class="note">per class: min {min(values):,}, median '
            f"{statistics.median(values):g}, max {max(values):,}"
            + ("; largest first, scroll for all" if len(counts) > 20 else "") + "</p>"
            f'<div class="scroll"><table class="bars" data-split="{escape(split)}">'
            + "".join(f'<tr><td class="c" title="{escape(cls)}">{_class_name(cls)}</td>'
                      f'<td class="b"><i style="width:{100 * n / top:.1f}%"></i></td>'
                      f'<td class="n">{n:,}</td></tr>' for n, cls in counts)
            + "</table></div>")
    return _section("classes", "Classes", "".join(parts), wide=False)


def _class_name(cls: str) -> str:
    return escape(cls) if cls else "<em>(unlabelled)</em>"


def _samples(card: Card) -> str:
    if not card.thumbs:
        return _section("samples", "Samples", '<p class="note">No images to show.</p>',
                        wide=False)
    totals = {cls: sum(n.values()) for cls, n in card.classes}
    figures = []
    for cls, thumbs in card.thumbs:
        imgs = "".join(_thumb(t) for t in thumbs)
        figures.append(f'<figure data-class="{escape(cls)}"><figcaption title="{escape(cls)}">'
                       f"{_class_name(cls)} <span>{totals.get(cls, 0):,}</span></figcaption>"
                       f'<div class="imgs">{imgs}</div></figure>')
    note = escape(card.thumb_note) + "; " if card.thumb_note else ""
    note += "chosen by content hash: the same artifact shows the same images"
    return _section("samples", "Samples",
                    f'<p class="note">{note}</p><div class="scroll tall"><div class="grid">'
                    f'{"".join(figures)}</div></div>',
                    wide=False)


def _thumb(t: Thumb) -> str:
    if not t.uri:
        return f'<span class="missing" title="{escape(t.label)}: {escape(t.why)}">?</span>'
    tiny = ' class="px"' if max(t.width, t.height) < 48 else ""  # pixels, not a blur
    return (f'<img src="{escape(t.uri)}" width="{t.width}" height="{t.height}"{tiny} '
            f'alt="{escape(t.label)}" title="{escape(t.label)}">')


def _audit(card: Card) -> str:
    return _section("audit", "Audit: copies across splits",
                    audit_section(card.audit, card.audit_note))


def _card_fields(fields: Any) -> str:
    pairs = []
    for name in ("license", "homepage", "citation"):
        if not fields.get(name):
            continue
        value = as_text(fields[name])  # a marker from a shared store may hold any JSON here
        if name == "homepage" and value.startswith(("https://", "http://")):
            pairs.append((name, f'<a href="{escape(value)}" rel="noreferrer">'
                                f"{escape(value)}</a>"))
        elif name == "citation":
            pairs.append((name, f"<pre>{escape(value)}</pre>"))
        else:
            pairs.append((name, escape(value)))
    meta = fields.get("meta") or {}
    for key, value in sorted(meta.items() if isinstance(meta, dict) else [("", meta)]):
        pairs.append((f"meta.{key}" if key else "meta", escape(as_text(value))))
    return _kv(pairs) if pairs else ""


def _card(card: Card) -> str:
    body = _card_fields(card.card) or (
        '<p class="note">No card: give the dataset a license, citation, homepage or meta '
        "in its manifest entry (shown here and by registry show, never part of a key).</p>")
    for name, fields in card.source_cards.items():
        body += f"<h3>source {escape(name)} (its terms bind this dataset too)</h3>"
        body += _card_fields(fields)
    return _section("card", "Card", body)


def _recipe(card: Card) -> str:
    params = _table(["param", "value"], [[escape(k), f"<code>{escape(as_text(v))}</code>"]
                                         for k, v in sorted(card.params.items())])
    built = dict(card.built)
    at = built.pop("at", None)
    pairs = []
    if isinstance(at, int | float):
        when = datetime.datetime.fromtimestamp(at, datetime.timezone.utc)
        pairs.append(("built at", when.strftime("%Y-%m-%d %H:%M:%S UTC")))
    if "seconds" in built:
        pairs.append(("took", f"{escape(as_text(built.pop('seconds')))} s"))
    pairs += [(k, escape(as_text(v))) for k, v in sorted(built.items())]
    return _section("recipe", f"Recipe: {card.recipe} (version {card.version})",
                    params + "<h3>build</h3>" + _kv(pairs), wide=False)


def _lineage(card: Card) -> str:
    def node(n: LineageNode) -> str:
        role = f'<span class="role">{escape(n.role)}:</span> ' if n.role else ""
        ok = n.status in ("built", "ready")
        key = f"<code>{escape(n.key)}</code>" if n.key else "<code>-</code>"
        what = "fingerprint" if n.kind == "source" else "key"
        kids = "<ul>" + "".join(node(c) for c in n.children) + "</ul>" if n.children else ""
        return (f"<li>{role}<b>{escape(n.name)}</b> <span class=\"kind\">{escape(n.kind)}"
                f'</span> <span class="status{"" if ok else " other"}">{escape(n.status)}'
                f"</span> {what} {key} <span class=\"kind\">{escape(n.detail)}</span>"
                f"{kids}</li>")

    recorded = _table(["source", "layout", "fingerprint", "images", "bytes"], [
        [escape(str(s.get("name", ""))), escape(str(s.get("layout", ""))),
         f"<code>{escape(str(s.get('fingerprint', '')))}</code>",
         f"{s.get('files', 0):,}" + (" (synthetic)" if s.get("synthetic") else ""),
         size(int(s.get("bytes", 0)))] for s in card.sources], right=frozenset({3, 4}))
    if card.sources:
        recorded = "<h3>sources it read, as its build recorded them</h3>" + recorded
    return _section("lineage", "Lineage", f'<ul class="tree">{node(card.lineage)}</ul>'
                    + (recorded if card.sources else ""))


def _files(card: Card) -> str:
    body = _table(["kind", "files", "bytes"],
                  [[escape("." + ext if ext != "(none)" else ext), f"{n:,}", size(b)]
                   for ext, n, b in card.kinds], right=frozenset({1, 2}))
    if card.shards:
        shards, records, low, median, high = card.shards
        body += (f'<p class="note">{shards:,} file(s) hold records: {records:,} records, '
                 f"{low:,} to {high:,} a file (median {median:,}).</p>")
    return _section("files", "Files", body, wide=False)


def _skipped(card: Card) -> str:
    if not card.skipped:
        return _section("skipped", "Skipped images", '<p class="note">None: every image '
                        "the recipe read was used.</p>")
    reasons = _table(["reason", "images"], [[escape(r), f"{n:,}"]
                                            for r, n in card.skipped_reasons], frozenset({1}))
    listed = _table(["member", "source", "reason"], [[escape(m), escape(s), escape(r)]
                                                     for m, s, r in card.skipped_rows])
    more = f" (the first {len(card.skipped_rows)} listed)" \
        if card.skipped > len(card.skipped_rows) else ""
    return _section("skipped", "Skipped images",
                    f'<p class="note">{card.skipped:,} image(s) the recipe could not use '
                    f"were left out (on_error: skip){more}.</p>" + reasons
                    + '<div class="scroll">' + listed + "</div>")


def _runs(card: Card) -> str:
    if card.runs_note:
        body = f'<p class="note">{escape(card.runs_note)}</p>'
    elif not card.runs:
        body = ('<p class="note">No job run has read this artifact (registry job render and '
                "submit record the runs).</p>")
    else:
        more = f" (the newest {len(card.runs)} listed)" if card.runs_total > len(card.runs) \
            else ""
        body = (f'<p class="note">{card.runs_total:,} run(s){more}.</p>'
                + _table(["run", "job", "flavor", "action", "at (UTC)", "as"],
                         [[f"<code>{escape(r.run_id)}</code>", escape(r.job), escape(r.flavor),
                           escape(r.action), escape(r.created_at), escape(r.role)]
                          for r in card.runs]))
    return _section("runs", "Runs that read it", body)


def size(n: int) -> str:
    """Bytes for a person: 1,234 B, 12.1 KiB, 3.4 MiB, 1.2 GiB."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value):,} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"
