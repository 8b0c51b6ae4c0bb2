"""Layouts: how a source's member names map to splits, classes and attributes.

A layout sees the source's members (tar members or folder files, each with its
size and xxh3) and says, for each, which split it belongs to, its logical name
in that split (what recipes and the fingerprint see), its class name and free
attributes, or that it is not part of the dataset. Layouts are plugins
(`dataset_registry.layouts`, see plugins.py): adding one is one new module with
a `Layout` subclass and one entry.

The one ignore rule every generic layout applies (`ignored`): hidden files and
folders (a name starting with "."), `__MACOSX/` folders, `Thumbs.db` and
`desktop.ini`, so a folder copied from any desktop indexes the same.
"""

from __future__ import annotations

import json
from abc import ABC
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from ...errors import SourceError
from ..tarindex import IndexedMember

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".pbm", ".pnm", ".bmp",
                              ".tif", ".tiff", ".webp", ".gif"})
"""What torchvision's ImageFolder and Hugging Face's imagefolder read (case-insensitive)."""

_IGNORED_NAMES = frozenset({"thumbs.db", "desktop.ini", "__macosx"})

BESIDE = "../"
"""How a file beside an archive source is named among its members (`Layout.beside`)."""

Reader = Callable[[IndexedMember], bytes]
"""Reads a member's bytes (a layout reads its tables this way)."""


@dataclass(frozen=True)
class Entry:
    """One member as the dataset sees it."""

    split: str  # "train", "val", "test", any name; "meta" holds tables and label files
    name: str  # logical name within the split, '/'-separated
    label: str = ""  # class name; "" = unlabelled
    attrs: Mapping[str, Any] = field(default_factory=dict)  # free per-member columns
    value: int | None = None  # the label as a whole number, where a table gave one (`label`
    # is then its text): such labels keep their value, see classes.default_classes

    @classmethod
    def labelled(cls, split: str, name: str, label: str | int | None,
                 attrs: Mapping[str, Any] | None = None) -> Entry:
        """An entry whose label is a class name, a whole number (a table's) or None."""
        if isinstance(label, int):
            return cls(split, name, str(label), attrs or {}, label)
        return cls(split, name, label or "", attrs or {})

    def attrs_json(self) -> str:
        return json.dumps(dict(self.attrs), sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False) if self.attrs else ""


class Options(BaseModel):
    """A layout's options (the source's `options:` mapping): strict, unknown keys refused."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Layout(ABC):
    """How one kind of source is laid out. Subclasses set `name`, `expects` and,
    if they take options, `Options`; they implement `entries` (or `classify`)."""

    name: ClassVar[str]
    expects: ClassVar[str]  # what a location must hold, for messages: "a folder of ..."
    Options: ClassVar[type[Options]] = Options
    folder: ClassVar[bool] = True  # may the location be a folder?
    tar: ClassVar[bool] = True  # may it be a tar?
    keyed: ClassVar[bool] = True
    """Whether the layout's name and options enter the source fingerprint. The first
    layouts shipped (imagenet-*) did not, and keep every key they made."""
    table_names: ClassVar[tuple[str, ...]] = ()
    """File names (a member's last component) of the tables the layout reads among a
    source's members: `by_name` of the `survey` of any members holding such a table gives
    None. A big zip's names are searched for them before any worker starts: where the
    survey of just the members so named finds a table, the zip is read serially at once."""

    def __init__(self, options: Options | None = None) -> None:
        self.options = options if options is not None else self.Options()

    @classmethod
    def parse_options(cls, raw: Mapping[str, Any]) -> Options:
        """Validate a manifest's `options:`; raises pydantic's ValidationError."""
        return cls.Options.model_validate(dict(raw))

    def beside(self) -> tuple[str, ...]:
        """Files next to an archive source (tar or zip) the layout reads too, e.g. the
        labels table Kaggle ships beside `train.zip`: named by the layout's options,
        relative to the archive's folder. They reach `entries` as members named
        `BESIDE + name` when the archive holds no member of that name; their bytes are
        part of the source's fingerprint."""
        return ()

    def nested(self, path: str) -> bool:
        """Whether the tar member at `path` is itself a tar to index (and not a file)."""
        return False

    def classify(self, origin: str, is_tar: bool) -> Entry | None:
        """The entry of one member, None to leave it out; raise SourceError if the
        member breaks the layout. Layouts that need tables override `entries` instead."""
        raise NotImplementedError

    def entries(self, members: Iterable[IndexedMember], is_tar: bool,
                read: Reader) -> Iterator[tuple[Entry, IndexedMember]]:
        """(entry, member) for every member that is part of the dataset."""
        for m in members:
            entry = self.classify(m.path, is_tar)
            if entry is not None:
                yield entry, m

    def left_inside(self) -> list[str]:
        """What the last `entries` left out of the members it read the members of itself
        (a shard file of a folder: "train-000000.tar/a.npy"; a folder entry ends with
        "/"), for `source set` to name beside the members it left out. Layouts that read
        no member's own members leave nothing there."""
        return []

    def survey(self, paths: Sequence[str]) -> Any:
        """What placing members by name needs to know of `paths` (the names of some of an
        archive's members), for `by_name`: a pool worker surveys its share of a big
        archive's names. Layouts placing by name alone need nothing."""
        return None

    def by_name(self, surveys: Sequence[Any]) -> Layout | None:
        """A layout placing each member by its name alone (`classify`), exactly as
        `entries` places it among all of them, given the `survey`s of all their names; None
        where no such layout can (it reads a table, say). A layout that has no `entries`
        of its own places by name alone already: it is its own answer."""
        return self if type(self).entries is Layout.entries else None

    def identity(self) -> dict[str, Any] | None:
        """What of the layout enters the fingerprint besides the members (None: nothing)."""
        if not self.keyed:
            return None
        return {"layout": self.name, "options": self.options.model_dump(mode="json")}


def ignored(path: str) -> bool:
    """The one ignore rule: hidden files or folders, OS litter (see the module docstring)."""
    return any(part.startswith(".") or part.lower() in _IGNORED_NAMES
               for part in path.split("/"))


def ignored_below(path: str, folders: dict[str, bool]) -> bool:
    """`ignored(path)`, each folder's answer kept in `folders` (a million images in a
    thousand folders ask a thousand times, not a million)."""
    folder, _, name = path.rpartition("/")
    hidden = folders.get(folder)
    if hidden is None:
        hidden = folders[folder] = bool(folder) and ignored(folder)
    return hidden or ignored_name(name)


def ignored_name(name: str) -> bool:
    """A file or folder name the ignore rule leaves out (hidden, OS litter)."""
    return name.startswith(".") or name.lower() in _IGNORED_NAMES


RESERVED_SPLITS = frozenset({"meta", "*"})  # the source's tables; a dataset's every file


def check_split(name: Any, where: str) -> str:
    """A split name becomes a folder name: one plain path component, not reserved."""
    from .tables import check_name

    if not isinstance(name, str):
        raise SourceError(f"{where}: split {name!r} is not a name")
    check_name(name, where, "split name")
    if "/" in name or "\\" in name or name in (".", "..") or name.startswith(".") or \
            name in RESERVED_SPLITS:
        raise SourceError(f"{where}: {name!r} is not a split name (one folder name, not "
                          f"starting with '.', not {' or '.join(sorted(RESERVED_SPLITS))})")
    return name


def kept_image_file(name: str) -> bool:
    """`not ignored_name(name) and is_image_name(name)` of a file's own name (no '/'), in one
    pass: a name not hidden has a character before its last dot wherever it has one, and
    lower case keeps a name's last dot last (a million times a source). No ignored name is
    an image's today; it is asked all the same."""
    if name.startswith("."):
        return False
    lower = name.lower()
    dot = lower.rfind(".")
    return dot > 0 and lower[dot:] in IMAGE_EXTENSIONS and lower not in _IGNORED_NAMES


def is_image_name(path: str) -> bool:
    """Whether `posixpath.splitext(path)[1]`, lower case, is an image extension: the
    file name's last dot, but for a name only dots precede (a million times a source)."""
    name = path[path.rfind("/") + 1:]
    dot = name.rfind(".")
    return dot > 0 and name[dot:].lower() in IMAGE_EXTENSIONS and \
        name[:dot].lstrip(".") != ""


def layout_class(name: str) -> type[Layout]:
    """The registered layout called `name` (a PluginError listing them if unknown)."""
    from ... import plugins

    return plugins.get("layouts", name)


def open_layout(name: str, options: Mapping[str, Any] | None = None) -> Layout:
    cls = layout_class(name)
    try:
        return cls(cls.parse_options(options or {}))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise SourceError(f"layout {name}: options.{where}: {first['msg']}") from None


__all__ = ["BESIDE", "IMAGE_EXTENSIONS", "RESERVED_SPLITS", "Entry", "Layout", "Options", "Reader",
           "check_split", "ignored", "ignored_below", "is_image_name", "layout_class",
           "open_layout"]
