"""A dataset card read back as a person sees it: the parsed DOM of the page (from the
HTML string, or from what headless chromium made of it), and what each test asks of it."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from html.parser import HTMLParser

import duckdb
from PIL import Image

from dataset_registry import Registry


@dataclass
class Page:
    h1: str = ""
    text: str = ""  # every text node, joined by spaces
    tags: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    bars: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # split: (class, n)
    figures: dict[str, list[dict[str, str]]] = field(default_factory=dict)  # class: imgs
    missing: dict[str, list[str]] = field(default_factory=dict)  # class: why (titles)


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self.stack: list[str] = []
        self.texts: list[str] = []
        self.split: str | None = None
        self.row: list[str] = []
        self.cell: str | None = None
        self.figure: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.page.tags.append((tag, a))
        if tag not in ("img", "meta", "br", "i"):
            self.stack.append(tag)
        if tag == "table" and "bars" in a.get("class", ""):
            self.split = a.get("data-split", "")
            self.page.bars[self.split] = []
        elif tag == "tr" and self.split is not None:
            self.row = []
        elif tag == "td" and self.split is not None:
            self.cell = a.get("class", "")
            if self.cell == "c":
                self.row.append(a.get("title", ""))
        elif tag == "figure":
            self.figure = a.get("data-class", "")
            self.page.figures[self.figure] = []
            self.page.missing[self.figure] = []
        elif tag == "img" and self.figure is not None:
            self.page.figures[self.figure].append(a)
        elif tag == "span" and self.figure is not None and a.get("class") == "missing":
            self.page.missing[self.figure].append(a.get("title", ""))

    def handle_endtag(self, tag: str) -> None:
        while self.stack and self.stack.pop() != tag:
            pass
        if tag == "table":
            self.split = None
        elif tag == "tr" and self.split is not None and len(self.row) == 2:
            self.page.bars[self.split].append((self.row[0], int(self.row[1].replace(",", ""))))
        elif tag == "td":
            self.cell = None
        elif tag == "figure":
            self.figure = None

    def handle_data(self, data: str) -> None:
        if self.stack and self.stack[-1] in ("style", "title"):
            return
        self.texts.append(data)
        if self.stack and self.stack[-1] == "h1" and not self.page.h1:
            self.page.h1 = data
        if self.cell == "n":
            self.row.append(data)


def parse(html: str) -> Page:
    reader = _Reader()
    reader.feed(html)
    reader.close()
    reader.page.text = " ".join(" ".join(reader.texts).split())
    return reader.page


def class_counts(reg: Registry, name: str) -> dict[str, list[tuple[str, int]]]:
    """What the card must show, from the file table itself: {split: [(class, count)]},
    largest first (the card's order). A row's split: the top folder of its path where the
    artifact declares that split, or where it declares none and the folder is not the
    row's class ("" for the rows in no split)."""
    table = f"{reg.built(name).store.tables(reg.key(name))}/_files.parquet"
    declared = reg.built(name).marker.splits or ()
    rows = duckdb.sql(f"SELECT path, \"class\" FROM read_parquet('{table}') "
                      "WHERE member IS NOT NULL").fetchall()
    counts: dict[str, dict[str, int]] = {}
    for path, cls in rows:
        top = path.split("/")[0]
        split = top if (top in declared if declared else "/" in path and top != cls) else ""
        counts.setdefault(split, {})
        counts[split][cls] = counts[split].get(cls, 0) + 1
    return {split: sorted(by.items(), key=lambda kv: (-kv[1], kv[0]))
            for split, by in counts.items()}


def image(uri: str) -> Image.Image:
    """The picture of a data: URI the card holds (a JPEG, base64)."""
    head, _, data = uri.partition(",")
    assert head == "data:image/jpeg;base64", head
    im = Image.open(io.BytesIO(base64.b64decode(data)))
    im.load()
    return im
