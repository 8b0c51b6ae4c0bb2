"""`webdataset`: existing WebDataset shards (the `webdataset` package's, or this
registry's `webdataset` recipe's) as a source, read in place.

The location is a folder of `*.tar` shards (optionally one folder per split), a tar
of such shards (as imagenet-train is a tar of class tars), or one shard.

Samples, as `webdataset.tariterators` groups them: a member's key is its path up to
the first dot of its basename (folders included), its extension the rest, lower
case (`a/b/x.seg.png` is key `a/b/x`, extension `seg.png`); members of one key in
one shard make one sample (adjacent or not). Members whose basename has no dot, and
WebDataset's `__...__` metadata, are skipped as its reader skips them. In a sample:

- the image is the member whose extension ends in an image extension
  (`layouts.IMAGE_EXTENSIONS`: jpg jpeg png webp ppm pgm pbm pnm bmp tif tiff gif),
  or the one `options.image` names (e.g. `seg.png`) when samples hold several;
  its logical name is its path in the shard (`x.jpg`);
- `.cls` (ASCII, a non-negative integer) is its class: named by line *i* of a
  classes file at the top of the location (`classes.txt`, or `options.classes`),
  or else by the integer in decimal, zero-padded to the widest label of the source
  (`07` next to `12`), so that sorting the names (ImageFolder's numbering, the
  registry's default class scheme) gives back the integers: registry webdataset ->
  this source -> webdataset keeps every `.cls` when no label is unused. A sample
  without `.cls` is unlabelled;
- `.json` (any JSON) and `.txt` (UTF-8) of at most 64 KiB become its attributes
  `json` and `txt`; every other member (`.npy`, larger ones, ...) is left out.
  The members read for a class or attributes are in split `meta` as
  `<split>/<member>` (`train/x.cls`), so they are in the fingerprint (an edited
  `.cls` changes every key built from it) while the shards' names are not
  (re-sharding the same samples keeps every key).

A shard's split: `options.split`, else the folder it lies in (`val/x-000001.tar`),
else the last of the words train, val, validation, valid, test, dev in its name
(`imagenet-val-000003.tar` is val; words split at `-`, `_`, `.`), else `train`.
One tar that is itself a shard is split `options.split` (default train).

Besides shards the location may hold the classes file, a built dataset's records
(`_registry.json`, `_files.parquet`, `_skipped.parquet`: a registry-built
webdataset's folder is a source as it is) and what `layouts.ignored` names;
anything else is refused. So are compressed shards (they cannot be read in place),
a shard with no samples, a sample with no image or two, a `.cls` that is not an
integer, and one key in two shards of a split.

A member's origin (what provenance names) is the shard it lies in, or its own name
when the location is one shard: a folder source's members are read from their
shard file at their offset, so the origin must be that file (each shard is read
whole once while indexing, a second pass over it after the folder walk hashed it).
"""

from __future__ import annotations

import io
import posixpath
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ...artifact.marker import FILES, MARKER, SKIPPED
from ...errors import SourceError
from ..folders import is_empty_folder
from ..tarindex import IndexedMember, scan_tar
from . import IMAGE_EXTENSIONS, Entry, Layout, Options, Reader, ignored
from .tables import json_value, parse_json

_KEY = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")  # webdataset.tariterators.base_plus_ext
_META = re.compile(r"__[^/]*__($|/)")  # what tar_file_iterator skips (skip_meta)
_IMAGES = frozenset(ext[1:] for ext in IMAGE_EXTENSIONS)
_SPLIT_WORDS = ("train", "val", "validation", "valid", "test", "dev")
_RECORDS = frozenset({MARKER, FILES, SKIPPED})
_COMPRESSED = (".tar.gz", ".tgz", ".tar.bz2", ".tbz", ".tar.xz", ".txz", ".tar.zst")
_SMALL = ("cls", "json", "txt")  # the members a sample's class and attributes come from
SMALL = 64 << 10  # `.json` / `.txt` members up to this size become attributes
_SPAN = 32 << 20  # small members of a tar are read in runs of at most this many bytes
_GAP = 256 << 10  # ... merging neighbours closer than this


class WebDatasetOptions(Options):
    split: str | None = None  # every shard's split (default: from its folder or name)
    image: str | None = None  # the image's extension, where samples hold several images
    classes: str | None = None  # the classes file naming .cls labels (default classes.txt)


@dataclass
class _Sample:
    """One sample as indexed: where it is, and what its small members said."""

    shard: str  # the shard's path in the location ("" when the location is the shard)
    key: str
    name: str  # the image's path in the shard: the logical name
    member: IndexedMember  # the image, as the index stores it
    number: int | None  # its .cls
    cls: str  # the .cls member's path in the shard, for messages
    attrs: dict[str, Any]
    read: list[tuple[str, IndexedMember]]  # the .cls/.json/.txt members it was read from


class WebDataset(Layout):
    name = "webdataset"
    expects = ("WebDataset shards: a folder of *.tar shards (one folder per split, or "
               "train-000000.tar-style names), a tar of them, or one shard; samples "
               "<key>.<image ext> with an optional <key>.cls")
    Options = WebDatasetOptions

    def __init__(self, options: Options | None = None) -> None:
        super().__init__(options)
        # every shard of a tar of shards, even an empty one, once (a pool that broke
        # before giving a member leaves the tar to a serial reading, which asks again)
        self._nested: dict[str, None] = {}
        self._left_inside: list[str] = []  # (`left_inside`)

    def nested(self, path: str) -> bool:
        # a tar of shards: its tars are the shards (tars inside a shard are samples' files);
        # a hidden one or litter (macOS's `._train-000000.tar`) is left out, as in a folder
        shard = path.lower().endswith(".tar") and ".tar/" not in path.lower() and \
            not ignored(path)
        if shard:
            self._nested[path] = None
        return shard

    def entries(self, members: Iterable[IndexedMember], is_tar: bool,
                read: Reader) -> Iterator[tuple[Entry, IndexedMember]]:
        opts: Any = self.options
        classes_name = opts.classes or "classes.txt"
        shards: dict[str, list[tuple[str, IndexedMember]]] = {}
        top: list[IndexedMember] = []  # members outside any shard
        classes_member = None
        self._nested = {}  # filled by `nested` as `members` is read, just below
        self._left_inside = []
        for m in members:
            if ignored(m.path):
                continue
            if m.path == classes_name:
                classes_member = m
            elif m.path in _RECORDS:
                continue  # a registry-built dataset's own records
            elif is_tar and (at := m.path.lower().find(".tar/")) >= 0:
                shards.setdefault(m.path[:at + 4], []).append((m.path[at + 5:], m))
            else:
                top.append(m)
        if opts.classes and classes_member is None:
            raise SourceError(f"no classes file {opts.classes!r} at the top (options.classes)")
        samples: list[_Sample] = []
        if is_tar and not self._nested:  # the tar is one shard
            samples += self._samples("", [(m.path, m) for m in top], read, None)
        else:
            for m in top:
                _refuse_stray(m.path)
            for name in self._nested:
                samples += self._samples(name, shards.get(name, []), read, None)
            if not is_tar:
                for m in top:
                    data = read(m)
                    inner = list(scan_tar(m.path,
                                          opener=lambda _, data=data: io.BytesIO(data)))
                    found = self._samples(m.path, [(i.path, i) for i in inner  # (a folder
                                                   if not is_empty_folder(i.path)], read,
                                          data)  # in a shard holds no sample)
                    samples += found
                    used = {p for s in found for p in (s.name, *(p for p, _ in s.read))}
                    self._left_inside += [f"{m.path}/{i.path}" for i in inner
                                          if i.path not in used]
        yield from self._entries(samples, classes_member, read)

    def left_inside(self) -> list[str]:
        return self._left_inside

    def _entries(self, samples: list[_Sample], classes_member: IndexedMember | None,
                 read: Reader) -> Iterator[tuple[Entry, IndexedMember]]:
        classes = _classes(classes_member, read) if classes_member is not None else None
        width = len(str(max((s.number for s in samples if s.number is not None),
                            default=0)))
        if classes_member is not None:
            yield Entry("meta", classes_member.path), classes_member
        seen: dict[tuple[str, str], str] = {}
        for s in samples:
            split = self._split_of(s.shard)
            if (split, s.key) in seen:
                raise SourceError(f"shards {seen[split, s.key]!r} and {s.shard!r} both hold "
                                  f"sample {s.key!r} (split {split}); a key names one sample")
            seen[split, s.key] = s.shard
            yield Entry(split, s.name, label=_class_name(s, classes, width, classes_member),
                        attrs=s.attrs), s.member
            # what a label or attribute came from is in the fingerprint, as a files table
            # or a metadata.csv is: an edited .cls changes every key built from it
            for path, m in s.read:
                yield Entry("meta", f"{split}/{path}"), m

    def _split_of(self, shard: str) -> str:
        opts: Any = self.options
        if opts.split is not None:
            split = opts.split
        elif "/" in shard:
            split = shard.split("/", 1)[0]
        else:
            words = re.split(r"[-_.]", posixpath.basename(shard)[:-4].lower())
            split = next((w for w in reversed(words) if w in _SPLIT_WORDS), "train")
        if split == "meta" or not split:
            raise SourceError(f"shard {shard!r}: {split!r} is not a split name "
                              "(name one in options.split)")
        return split

    def _samples(self, shard: str, members: list[tuple[str, IndexedMember]], read: Reader,
                 data: bytes | None) -> list[_Sample]:
        """The samples of one shard; `data` is the shard's bytes when it is a file of a
        folder (its members are read from it), None when it lies in the source's tar."""
        opts: Any = self.options
        groups: dict[str, dict[str, tuple[str, IndexedMember]]] = {}
        for path, m in members:
            if ignored(path) or _META.match(path) or (
                    "/" not in path and path.startswith("__") and path.endswith("__")):
                continue
            found = _KEY.match(path)
            if found is None:
                continue  # no extension: WebDataset's reader skips it too
            key, ext = found.group(1), found.group(2).lower()
            fields = groups.setdefault(key, {})
            if ext in fields:
                raise SourceError(f"{_in(shard)}sample {key!r} has two .{ext} members "
                                  f"({fields[ext][0]!r}, {path!r})")
            fields[ext] = (path, m)
        if not groups:
            raise SourceError(f"{_in(shard) or 'the tar: '}holds no WebDataset samples "
                              "(members named <key>.<extension>)")
        small = _read_small([(key, ext, p, m) for key, fields in groups.items()
                             for ext, (p, m) in fields.items() if ext in _SMALL
                             and (ext == "cls" or m.size <= SMALL)], shard, read, data)
        out = []
        for key, fields in groups.items():
            if opts.image is not None:
                want = opts.image.lower().lstrip(".")
                images = [want] if want in fields else []
            else:
                images = sorted(e for e in fields if e.rsplit(".", 1)[-1] in _IMAGES)
            if len(images) != 1:
                raise SourceError(_image_problem(shard, key, fields, images, opts.image))
            name, image = fields[images[0]]
            attrs = {ext: small[key, ext] for ext in _SMALL[1:] if (key, ext) in small}
            out.append(_Sample(shard, key, name, _in_shard(shard, image),
                               small.get((key, "cls")), fields.get("cls", ("", None))[0],
                               attrs, [(fields[ext][0], _in_shard(shard, fields[ext][1]))
                                       for ext in _SMALL if (key, ext) in small]))
        return out


def _in_shard(shard: str, m: IndexedMember) -> IndexedMember:
    """The member as the index stores it: read from its shard (the shard's file in a
    folder, at its offset; the source's tar at its offset), with the shard as its origin."""
    return IndexedMember(shard, m.offset, m.size, m.xxh3) if shard else m


def _class_name(s: _Sample, classes: list[str] | None, width: int,
                classes_member: IndexedMember | None) -> str:
    """The sample's class name: its .cls zero-padded to `width`, or the classes file's."""
    if s.number is None:
        return ""
    if classes is None or classes_member is None:
        return str(s.number).zfill(width)
    if s.number >= len(classes):
        raise SourceError(f"{_in(s.shard)}member {s.cls!r}: class {s.number}, but "
                          f"{classes_member.path} names {len(classes)} (0..{len(classes) - 1})")
    return classes[s.number]


def _in(shard: str) -> str:
    return f"shard {shard!r}: " if shard else ""


def _refuse_stray(path: str) -> None:
    lower = path.lower()
    if lower.endswith(_COMPRESSED):
        raise SourceError(f"{path!r} is a compressed shard: it cannot be read in place; "
                          "decompress it (e.g. gunzip) into a plain .tar")
    if not lower.endswith(".tar"):
        raise SourceError(f"{path!r} is not a shard (a .tar); only shards, a classes file "
                          "and a built dataset's records may lie beside them")


def _image_problem(shard: str, key: str, fields: dict[str, Any], images: list[str],
                   image: str | None) -> str:
    where = f"{_in(shard)}sample {key!r}"
    have = ", ".join(repr(p) for p, _ in sorted(fields.values(), key=lambda f: f[0]))
    if images:
        return (f"{where}: two images ({', '.join('.' + e for e in images)}); name the one "
                "to use in options.image")
    want = f"a .{image} member (options.image)" if image else \
        f"an image ({', '.join(sorted(_IMAGES))})"
    return f"{where}: no image among its members ({have}); a sample needs {want}"


def _read_small(wanted: list[tuple[str, str, str, IndexedMember]], shard: str, read: Reader,
                data: bytes | None) -> dict[tuple[str, str], Any]:
    """The values of the `.cls`, `.json` and `.txt` members, by (key, extension). From a
    tar they are read in runs of neighbours (one request each on object storage, not one
    per member)."""
    raw: dict[int, bytes] = {}
    if data is not None:
        raw = {m.offset: data[m.offset:m.offset + m.size] for *_, m in wanted}
    else:
        # a zip's deflated member, read alone (inflated): its bytes are not its text
        raw = {m.offset: read(m) for *_, m in wanted if m.packed}
        ordered = sorted((w[3] for w in wanted if not w[3].packed), key=lambda m: m.offset)
        i = 0
        while i < len(ordered):
            start, j = ordered[i].offset, i + 1
            end = start + ordered[i].size
            while j < len(ordered) and ordered[j].offset - end <= _GAP and \
                    ordered[j].offset + ordered[j].size - start <= _SPAN:
                end = max(end, ordered[j].offset + ordered[j].size)
                j += 1
            blob = read(IndexedMember("", start, end - start, ""))  # (a tar reads by range)
            for m in ordered[i:j]:
                raw[m.offset] = blob[m.offset - start:m.offset - start + m.size]
            i = j
    return {(key, ext): _value(f"{_in(shard)}member {path!r}", ext, raw[m.offset])
            for key, ext, path, m in wanted}


def _value(where: str, ext: str, data: bytes) -> Any:
    try:
        if ext == "cls":
            text = data.decode("ascii").strip()
            if not text.isdigit():
                raise ValueError
            return int(text)
        text = data.decode("utf-8")
        return json_value(parse_json(text, where), where) if ext == "json" else text
    except UnicodeDecodeError:
        raise SourceError(f"{where}: not {'ASCII' if ext == 'cls' else 'UTF-8'} text") \
            from None
    except ValueError:
        raise SourceError(f"{where}: {data[:40]!r} is not a class label (a .cls holds a "
                          "non-negative integer)") from None


def _classes(member: IndexedMember, read: Reader) -> list[str]:
    """The classes file's names in label order (one a line, as `classes.read_classes`)."""
    from ..classes import parse_classes  # not at the top: it brings numpy to manifest parsing

    try:
        text = read(member).decode("utf-8")
    except UnicodeDecodeError:
        raise SourceError(f"{member.path}: not UTF-8 text") from None
    return parse_classes(text, member.path, SourceError)
