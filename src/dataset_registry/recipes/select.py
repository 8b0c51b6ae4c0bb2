"""Byte-exact image subsets: `select` (e.g. the "min" val set), and what a recipe built on
it changes (`flat`, `labels_for`, `finish`: ImageNet's `calibration`, in domains/imagenet/).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from pydantic import Field

from ..errors import BadInputError
from .base import Inputs, InputSpec, Params, Plan, Recipe
from .imagecheck import OnError, usable
from .lists import read_list
from .naming import record_names, refuse_clashes

if TYPE_CHECKING:  # an Output is handed in: writing one is the engine's import; members
    # are read only in a task (numpy: not for a key)
    from ..artifact.output import Output
    from ..sources.members import MemberRef, MemberSet

_CHUNK = 128  # images per task: enough to amortise scheduling, small enough to balance


class SelectParams(Params):
    # version 1 wrote base names only; `folders` keeps `<class>/<file>` (a class-folder
    # source), and stays out of the key at its default so every shipped key holds
    added_later: ClassVar[frozenset[str]] = frozenset({"folders"})

    split: str = "val"
    first: int | None = Field(default=None, gt=0, le=100_000_000)  # more than any source
    validate_images: bool = True
    on_error: OnError = "fail"
    folders: bool = False


@dataclass(frozen=True)
class Entry:
    name: str
    label: int | None
    where: str  # "lists/x.txt:12" or "first 500"


def pick_split(sets: dict[str, MemberSet], split: str, role: str) -> MemberSet:
    """The input's split `split`. A built dataset offers all its files as `"*"`, and each
    split it declared (e.g. a `sample`'s train and val) by name; one that declared none
    serves any split name with all its files, as it always has."""
    if split in sets:
        if not len(sets[split]):
            raise BadInputError(f"input {role!r} ({sets[split].where}): split {split!r} is "
                                "empty: it holds no images")
        return sets[split]
    if list(sets) == ["*"]:
        return sets["*"]
    where = next(iter(sets.values())).where if sets else role
    raise BadInputError(f"input {role!r} ({where}) has no split {split!r} (it has: "
                        f"{', '.join(sets)})")


class Select(Recipe):
    """Copies the chosen images unchanged, into one flat folder (base names, as version 1
    did; two images of one base name are an error), or with `folders: true` under their
    names in the split (`<class>/<file>` for a class-folder source). The file table keeps
    each image's class and attributes either way."""

    name = "select"
    version = 1
    flat: ClassVar[bool] = False  # write base names only (e.g. calibration: CK's flat folder)
    Params = SelectParams
    inputs: ClassVar[Mapping[str, InputSpec]] = {
        "images": InputSpec("images", doc="a source or dataset of images"),
        "list": InputSpec("file", required=False, doc="file names, one a line, optional label"),
    }

    @classmethod
    def entries(cls, params: SelectParams, inputs: Inputs, images: MemberSet) -> list[Entry]:
        if "list" in inputs.files:
            path = inputs.files["list"]
            entries = [Entry(name, label, f"{path}:{line}") for name, label, line in
                       read_list(path)]
            if params.first:
                entries = entries[: params.first]
            for e in entries:
                if e.name not in images:
                    raise BadInputError(f"{e.where}: {e.name} is not in {images.where}")
            return entries
        count = min(params.first or len(images), len(images))
        if params.first and count < params.first:
            raise BadInputError(f"{images.where}: first: {params.first} asked for, but it "
                                f"holds only {count} images")
        # the set's first names, a column at a time (a ref a member cost ~50 us: 14 s for
        # a 256,200-member source)
        where = f"first {params.first or count}"
        return [Entry(name, None, where) for name in images.names.slice(0, count).tolist()]

    @classmethod
    def plan(cls, params: SelectParams, inputs: Inputs) -> Plan:
        images = pick_split(inputs.images["images"], params.split, "images")
        entries = cls.entries(params, inputs, images)
        labels = cls.labels_for(params, inputs, entries)
        unique = list(dict.fromkeys(e.name for e in entries))
        whole = params.folders and not cls.flat
        if not whole:
            bases = [name.rpartition("/")[2] for name in unique]  # posixpath.basename, no call
            if cls.flat:  # one flat folder, whatever the names (CK's calibration layout)
                refuse_clashes(unique, bases, "in one flat folder as", images.where)
            else:  # files numbered per folder keep their whole names (naming.py)
                whole = record_names(unique, bases, unique, "file", images.where)[1]
        paths = unique if whole else bases  # each image's path in the output
        refs = _refs(images, unique, look_up="list" in inputs.files)
        todo = [(ref, labels.get(ref.name), path) for ref, path in zip(refs, paths, strict=True)]
        return Plan([todo[i:i + _CHUNK] for i in range(0, len(todo), _CHUNK)],
                    context=(entries, labels))

    @classmethod
    def labels_for(cls, params: SelectParams, inputs: Inputs,
                   entries: list[Entry]) -> dict[str, int]:
        return {}

    @classmethod
    def run(cls, params: SelectParams, task: list[tuple[MemberRef, int | None, str]],
            out: Output) -> list[str]:
        from ..sources.members import read_members

        kept = set()
        for i, ref, data in usable(read_members(ref for ref, _, _ in task), out,
                                   params.on_error, validate=params.validate_images):
            _, label, path = task[i]
            out.write(path, data, label=label, member=ref.origin, source=ref.source,
                      class_name=ref.label, attrs=ref.attrs, xxh3=ref.xxh3)
            kept.add(i)
        return [ref.name for i, (ref, _, _) in enumerate(task) if i not in kept]


def _refs(images: MemberSet, names: list[str], look_up: bool) -> Iterator[MemberRef]:
    """The refs of `names` (distinct, each in `images`), in their order: those a list
    named, each looked up by name; else, as `entries` gives them, the set's first names in
    its order, made a batch at a time, each checked to be the one named (from the first
    that is not, as entries of a subclass's own may be, each is looked up)."""
    batched = None if look_up else itertools.islice(images, len(names))
    for name in names:
        ref = next(batched, None) if batched is not None else None
        if ref is None or ref.name != name:
            batched = None
            ref = images.get(name)
        yield ref
