"""`image-folder`: class folders, as torchvision's ImageFolder and Hugging Face's
imagefolder read them.

    <class>/<image>                   every image in split `options.split` (default train)
    <split>/<class>/<image>           one level of split folders (any names)
    <image> + metadata.csv            Hugging Face's flat layout: the table gives the class
    <split>/<image> + <split>/metadata.csv    the same, one folder (and table) per split

An optional `metadata.csv` or `metadata.jsonl` (Hugging Face's convention) at the top,
or at the top of a split folder, has a `file_name` column relative to its own folder;
its `label` column, if any, gives the class (instead of the folder), and every other
column becomes the image's attributes. Every row must name an image of the source. An
image directly in its split (no class folder) takes its class from its row; a folder of
such images without any table is one split of unlabelled images. Files that are not
images (by extension) and what `ignored` names are left out.
"""

from __future__ import annotations

import dataclasses
import posixpath
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal

from ...errors import SourceError
from ..tarindex import IndexedMember
from . import (
    Entry,
    Layout,
    Options,
    Reader,
    check_split,
    ignored_below,
    is_image_name,
    kept_image_file,
)
from .tables import check_name, labels, read_table

METADATA = ("metadata.csv", "metadata.jsonl")
_TABLE_ENDS = tuple(f"/{name}" for name in METADATA)  # a table below the top
SPLIT_WORDS = frozenset({"train", "test", "val", "validation", "valid", "dev", "eval"})
"""Folder names read as splits (Hugging Face's imagefolder tells splits by such words)."""


def archive_root(images: list[IndexedMember], tables: list[IndexedMember]) -> str:
    """"X/" when an archive holds one folder X with every image at least two folders
    below it (`zip -r pets.zip pets`, `tar cf pets.tar pets`): read as if extracted, X
    is the source's root. Not when X is named as a split is ("train/"), nor when X is
    itself the only class folder."""
    tops = {m.path.split("/", 1)[0] for m in [*images, *tables]}
    if len(tops) != 1 or not images or "/" not in images[0].path:
        return ""
    top = tops.pop()
    if top in SPLIT_WORDS or min(m.path.count("/") for m in images) < 2:
        return ""
    return top + "/"


class ImageFolderOptions(Options):
    split: str = "train"  # the split of <class>/<image> images
    splits: Literal["auto", "yes", "no"] = "auto"  # auto: split folders if every image is 3 deep


class ImageFolder(Layout):
    name = "image-folder"
    expects = ("class folders: <class>/<image> or <split>/<class>/<image> (as torchvision's "
               "ImageFolder reads them), optionally with metadata.csv / metadata.jsonl")
    Options = ImageFolderOptions
    table_names = METADATA

    def entries(self, members: Iterable[IndexedMember], is_tar: bool,
                read: Reader) -> Iterator[tuple[Entry, IndexedMember]]:
        opts: Any = self.options
        images, tables = [], []
        folders: dict[str, bool] = {}  # ignored or not, by folder
        for m in members:  # paths arrive as `tar -x` writes them (no "./")
            path = m.path
            if ignored_below(path, folders):
                continue
            if posixpath.basename(path) in METADATA:
                tables.append(m)
            elif is_image_name(path):
                images.append(m)
        originals: dict[int, IndexedMember] = {}
        if is_tar and (root := archive_root(images, tables)):  # `zip -r pets.zip pets`
            images, tables = ([self._below(root, m, originals) for m in found]
                              for found in (images, tables))
        depths = {m.path.count("/") + 1 for m in images}
        split_tables = any(t.path.count("/") == 1 for t in tables)  # `<split>/metadata.csv`
        # split folders: all images 3 deep, a table per split folder, or (as Hugging Face
        # tells splits) a table at the top over folders named as splits are
        named_splits = bool(tables) and depths <= {2, 3} and \
            {m.path.split("/", 1)[0] for m in images} <= SPLIT_WORDS
        nested = {"yes": True, "no": False}.get(
            opts.splits, depths == {3} or split_tables or named_splits)
        meta, meta_labels, meta_lines = self._metadata(tables, nested, read,
                                                       {m.path for m in images})
        placer = _Placer(opts.split, nested, frozenset(depths), not meta)
        for m in tables:
            yield Entry("meta", m.path), originals.get(id(m), m)
        some_labelled = any(v is not None for v in meta_labels.values())
        for m in images:
            row = meta.get(m.path)
            if row is None:
                yield placer.place(m.path), originals.get(id(m), m)
                continue
            label = meta_labels[m.path]
            if label is None and some_labelled and m.path.count("/") == int(nested):
                line, table = meta_lines[m.path]
                raise SourceError(f"{table}:{line}: no label for {m.path.rsplit('/', 1)[-1]!r}, "
                                  "an image with no class folder (other rows give theirs)")
            attrs = {k: v for k, v in row.items() if k not in ("file_name", "label")}
            yield placer.place(m.path, True, label, attrs), originals.get(id(m), m)

    def survey(self, paths: Sequence[str]) -> dict[str, bool]:
        """The folders among `paths` holding images or tables: whether each holds a table."""
        found: dict[str, bool] = {}
        folders: dict[str, bool] = {}  # ignored or not, by folder
        # A folder found already changes only with a table, so the paths after one in the
        # same folder are only asked whether they name a table (80,063 names in 63 folders:
        # 0.061 -> 0.017 s, on 2 cores)
        settled, after = None, 0  # the last folder found, as a prefix; its length
        for path in paths:
            if settled is not None and path.startswith(settled) and \
                    path.find("/", after) < 0 and not path.endswith(_TABLE_ENDS) and \
                    path not in METADATA:
                continue
            if ignored_below(path, folders):
                continue
            folder, _, name = path.rpartition("/")
            if name in METADATA:
                found[folder] = True
            elif is_image_name(name):
                found.setdefault(folder, False)
            else:
                continue
            settled = folder + "/" if folder else ""
            after = len(settled)
        return found

    def by_name(self, surveys: Sequence[Any]) -> Layout | None:
        """Where no table lies among an archive's members, each is placed by its name alone,
        once `entries` would know how deep the images lie and whether the archive holds
        one folder (`archive_root`): the surveys of all its names say."""
        folders: set[str] = set()  # the folders holding images
        for found in surveys:
            for folder, table in found.items():
                if table:
                    return None
                folders.add(folder)
        root = ""
        tops = {folder.split("/", 1)[0] for folder in folders}
        top = tops.pop() if len(tops) == 1 else ""  # ("": images at the top, or no image)
        if top and top not in SPLIT_WORDS and min(f.count("/") for f in folders) >= 1:
            root = top + "/"  # (as archive_root: every image two folders below one folder)
        # an image's depth, as `entries` counts it: its folder's, plus one, less the root
        depths = frozenset(folder.count("/") + 2 - bool(root) if folder else 1
                           for folder in folders)
        opts: Any = self.options  # (no table: no split told by tables, as in `entries`)
        nested = {"yes": True, "no": False}.get(opts.splits, depths == {3})
        return _ByName(_Placer(opts.split, nested, depths, True), root)

    @staticmethod
    def _below(root: str, m: IndexedMember, originals: dict[int, IndexedMember]
               ) -> IndexedMember:
        """`m` as if its archive were extracted and `root` were the source."""
        inner = dataclasses.replace(m, path=m.path[len(root):])
        originals[id(inner)] = m
        return inner

    def _metadata(self, tables: list[IndexedMember], nested: bool, read: Reader,
                  images: set[str]) -> tuple[dict[str, dict[str, Any]],
                                             dict[str, str | int | None],
                                             dict[str, tuple[int, str]]]:
        """Rows of every metadata table and their labels (tables.labels), by the member
        path they describe; a row naming no image of the source is refused (a typo would
        otherwise drop its label silently)."""
        rows: dict[str, dict[str, Any]] = {}
        found: dict[str, str | int | None] = {}
        lines: dict[str, tuple[int, str]] = {}  # the (line, table) of each row
        for t in sorted(tables, key=lambda m: m.path):
            folder = posixpath.dirname(t.path)
            if folder.count("/") > 0 or (folder and not nested):
                raise SourceError(f"member {t.path!r}: a metadata table lies at the top or at "
                                  "the top of a split folder")
            table = read_table(t, read, t.path)
            for (line, row), label in zip(table, labels(table, "label", t.path), strict=True):
                name = row.get("file_name")
                if not isinstance(name, str) or not name:
                    raise SourceError(f"{t.path}:{line}: no file_name")
                path = posixpath.normpath(posixpath.join(folder, name))
                if path in rows:
                    raise SourceError(f"{t.path}:{line}: {name!r} is described twice")
                if path not in images:
                    raise SourceError(f"{t.path}:{line}: {name!r} is not an image of the "
                                      "source" + (f" (looked for {path!r})" if folder else ""))
                rows[path], found[path], lines[path] = row, label, (line, t.path)
        return rows, found, lines


@dataclasses.dataclass
class _Placer:
    """Where an image goes, once it is known how deep the images lie (`depths`), whether
    the first folder is a split (`nested`), and whether images with no class folder may be
    unlabelled (no table gives rows)."""

    split: str  # options.split: the split of images with no split folder
    nested: bool
    depths: frozenset[int]
    tableless: bool
    fine: set[str] = dataclasses.field(default_factory=set)  # names checked already

    def place(self, path: str, row: bool = False, label: str | int | None = None,
              attrs: dict[str, Any] | None = None) -> Entry:
        """The entry of the image at `path` (below the archive's root), given a table's
        `row` for it (its `label`, where it gives one, and its other columns)."""
        parts = path.split("/")
        split, rest = (parts[0], parts[1:]) if self.nested else (self.split, parts)
        flat_unlabelled = self.tableless and self.depths == {1 + self.nested}
        if len(rest) > 2 or not rest or (len(rest) == 1 and not row and not flat_unlabelled):
            shape = "<split>/<class>/<image>" if self.nested else "<class>/<image>"
            why = f"images lie {' and '.join(map(str, sorted(self.depths)))} folders deep" \
                if len(self.depths) > 1 else "see options.splits"
            raise SourceError(f"member {path!r} is not {shape} (layout image-folder: {why}; "
                              "an image directly in its split needs a row in metadata.csv)")
        if split not in self.fine:  # (a name is checked at its first member; once fine, fine)
            check_split(split, f"member {path!r}")
            self.fine.add(split)
        folder = rest[0] if len(rest) == 2 else None
        if folder is not None and "/" + folder not in self.fine:
            check_name(folder, f"member {path!r}", "class name")
            self.fine.add("/" + folder)
        return Entry.labelled(split, "/".join(rest), folder if label is None else label,
                              attrs)


class _ByName(Layout):
    """image-folder over an archive holding no table, once its names were surveyed: each
    member placed by its name alone, as `ImageFolder.entries` places it (each pool task
    gets a copy: the folders it learns stay in that task)."""

    name = ImageFolder.name
    expects = ImageFolder.expects

    def __init__(self, placer: _Placer, root: str) -> None:
        super().__init__()
        self.placer, self.root = placer, root
        self.folders: dict[str, bool] = {}  # ignored or not, by folder
        # where the images of a folder go (the same for all: its split and class), and
        # where in their path their name in the split starts
        self.placed: dict[str, tuple[str, int, str]] = {}

    def classify(self, origin: str, is_tar: bool) -> Entry | None:
        folder, _, name = origin.rpartition("/")
        known = self.placed.get(folder)
        if known is not None:  # (a folder not ignored: only the file's own name may be)
            if not kept_image_file(name):
                return None
            split, cut, label = known
            return Entry(split, origin[cut:], label)
        if ignored_below(origin, self.folders) or not is_image_name(origin):
            return None
        # (a folder placing refuses is never known: each of its images raises)
        entry = self.placer.place(origin[len(self.root):])
        self.placed[folder] = (entry.split, len(origin) - len(entry.name), entry.label)
        return entry
