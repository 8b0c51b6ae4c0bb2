"""`image-folder`: class folders, as torchvision's ImageFolder and Hugging Face's
imagefolder read them.

    <class>/<image>                   every image in split `options.split` (default train)
    <split>/<class>/<image>           one level of split folders (any names)

An optional `metadata.csv` or `metadata.jsonl` (Hugging Face's convention) at the top,
or at the top of a split folder, has a `file_name` column relative to its own folder;
its `label` column, if any, gives the class (instead of the folder), and every other
column becomes the image's attributes. Files that are not images (by extension) and
what `ignored` names are left out.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Iterator
from typing import Any, Literal

from ..errors import SourceError
from ..tarindex import IndexedMember
from . import Entry, Layout, Options, Reader, ignored, is_image_name
from .tables import read_table

METADATA = ("metadata.csv", "metadata.jsonl")


class ImageFolderOptions(Options):
    split: str = "train"  # the split of <class>/<image> images
    splits: Literal["auto", "yes", "no"] = "auto"  # auto: split folders if every image is 3 deep


class ImageFolder(Layout):
    name = "image-folder"
    expects = ("class folders: <class>/<image> or <split>/<class>/<image> (as torchvision's "
               "ImageFolder reads them), optionally with metadata.csv / metadata.jsonl")
    Options = ImageFolderOptions

    def entries(self, members: Iterable[IndexedMember], is_tar: bool,
                read: Reader) -> Iterator[tuple[Entry, IndexedMember]]:
        opts: Any = self.options
        images, tables = [], []
        for m in members:  # paths arrive as `tar -x` writes them (no "./")
            path = m.path
            if ignored(path):
                continue
            if posixpath.basename(path) in METADATA:
                tables.append(m)
            elif is_image_name(path):
                images.append(m)
        depths = {m.path.count("/") + 1 for m in images}
        nested = {"yes": True, "no": False}.get(opts.splits, depths == {3})
        want = 3 if nested else 2
        for m in images:
            if m.path.count("/") + 1 != want:
                shape = "<split>/<class>/<image>" if nested else "<class>/<image>"
                why = f"images lie {' and '.join(map(str, sorted(depths)))} folders deep" \
                    if len(depths) > 1 else "see options.splits"
                raise SourceError(f"member {m.path!r} is not {shape} (layout image-folder: "
                                  f"{why})")
        meta = self._metadata(tables, nested, read)
        for m in tables:
            yield Entry("meta", m.path), m
        for m in images:
            parts = m.path.split("/")
            split, rest = (parts[0], parts[1:]) if nested else (opts.split, parts)
            if split == "meta":
                raise SourceError(f"member {m.path!r}: 'meta' is not a split name")
            label, attrs = rest[0], {}
            row = meta.get(m.path)
            if row is not None:
                attrs = {k: v for k, v in row.items() if k not in ("file_name", "label")}
                if row.get("label") not in (None, ""):
                    label = str(row["label"])
            yield Entry(split, "/".join(rest), label=label, attrs=attrs), m

    def _metadata(self, tables: list[IndexedMember], nested: bool,
                  read: Reader) -> dict[str, dict[str, Any]]:
        """Rows of every metadata table, by the member path they describe."""
        rows: dict[str, dict[str, Any]] = {}
        for t in sorted(tables, key=lambda m: m.path):
            folder = posixpath.dirname(t.path)
            if folder.count("/") > 0 or (folder and not nested):
                raise SourceError(f"member {t.path!r}: a metadata table lies at the top or at "
                                  "the top of a split folder")
            for line, row in read_table(t.path, read(t), t.path):
                name = row.get("file_name")
                if not isinstance(name, str) or not name:
                    raise SourceError(f"{t.path}:{line}: no file_name")
                path = posixpath.normpath(posixpath.join(folder, name))
                if path in rows:
                    raise SourceError(f"{t.path}:{line}: {name!r} is described twice")
                rows[path] = row
        return rows
