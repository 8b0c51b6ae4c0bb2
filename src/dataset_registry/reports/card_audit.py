"""The card's audit section: what `audit.audit` found, rendered (exact copies across and
within splits, near copies when asked for, undecodable images, class balance)."""

from __future__ import annotations

from html import escape
from typing import Any

SHOWN = 10  # groups and pairs listed on the page (the counts are whole)


def audit_section(audit: dict[str, Any] | None, why_not: str) -> str:
    if audit is None:
        return f'<p class="note">{escape(why_not)}</p>'
    counts, near = audit["counts"], audit["near"]
    clean = ("No image is in two splits." if near["checked"] else
             "No image has an exact copy in another split (near copies not checked).")
    verdict = ('<p class="leak"><b>Leak:</b> images in more than one split.</p>'
               if audit["leak"] else f'<p class="clean">{clean}</p>')
    rows = [("exact copies across splits", _count(counts["exact_across"], "group")),
            ("exact copies within a split", _count(counts["exact_within"], "group")),
            ("near copies across splits", _count(counts["near_across"], "pair")
             if near["checked"] else f"not checked: {escape(near['why_not'] or '')}"),
            ("undecodable images", _count(counts["undecodable"], "image")
             if counts["undecodable"] is not None else "not checked")]
    body = verdict + '<dl class="kv">' + "".join(
        f"<dt>{escape(k)}</dt><dd>{v}</dd>" for k, v in rows) + "</dl>"
    body += _groups("Exact copies across splits", audit["exact_across"])
    body += _groups("Exact copies within a split", audit["exact_within"])
    if audit["near_across"]:
        items = "".join(f"<li>{_ref(p['a'])} ~ {_ref(p['b'])} "
                        f"<span class=\"role\">({p['distance']} bits)</span></li>"
                        for p in audit["near_across"][:SHOWN])
        body += f"<h3>Near copies across splits</h3><ul>{items}</ul>"
    if audit["undecodable"]:
        items = "".join(f"<li>{_ref(u)}: {escape(str(u.get('why', '')))}</li>"
                        for u in audit["undecodable"][:SHOWN])
        body += f"<h3>Undecodable images</h3><ul>{items}</ul>"
    balance = [(split, s["balance"]) for split, s in audit["splits"].items() if s["balance"]]
    if balance:
        body += "<h3>Class balance</h3><ul>" + "".join(
            f"<li>{escape(split)}: {b['min']:,} ({escape(str(b['smallest']))}) to "
            f"{b['max']:,} ({escape(str(b['largest']))}), ratio {b['ratio']:.2f}</li>"
            for split, b in balance) + "</ul>"
    return body


def _count(n: int, noun: str) -> str:
    return f"<b>{n:,}</b> {noun}{'' if n == 1 else 's'}"


def _groups(title: str, groups: list[dict[str, Any]]) -> str:
    if not groups:
        return ""
    items = "".join(
        f"<li><code>{escape(g['xxh3'][:12])}</code> {g['copies']} copies: "
        + ", ".join(_ref(m) for m in g["members"][:4])
        + (" ..." if g["copies"] > 4 else "") + "</li>" for g in groups[:SHOWN])
    more = f"<p class=\"note\">and {len(groups) - SHOWN:,} more</p>" \
        if len(groups) > SHOWN else ""
    return f"<h3>{escape(title)}</h3><ul>{items}</ul>{more}"


def _ref(member: dict[str, Any]) -> str:
    return (f"{escape(str(member.get('split', '')))}/<code>{escape(str(member['name']))}"
            "</code>")
