"""`sample`: a seeded random subset of one labelled split, and/or a stratified split of it
into named output splits (train/val, 80/20, ...), copied byte for byte.

The draw is a pure function of the input's member names and class names, the params and
the seed, made on the coordinator, so any worker count writes the same bytes:

1. classes in sorted order, each class's members in sorted name order;
2. `random.Random(seed)` (never the global RNG): with `n`, first `rng.sample` of `n`
   positions over the whole split (sorted names); then each class, in sorted order, is
   shuffled (`rng.shuffle`) and, with `per_class`, cut to its first `per_class`;
3. with `splits`, each class's drawn members are divided by the fractions (largest
   remainder, ties to the earlier split name; then a split left empty takes one from the
   largest where the class has at least one member per split), and handed out in
   shuffled order to the splits in sorted name order;
4. with `duplicates: together`, the members of one content (one xxh3: exact copies, under
   any names and classes) all go to the split the first of them drawn went to (in the
   order above), so no image is in two splits; the counts move by the copies moved.

Output: `<split>/<class>/<file name>` (an ImageFolder tree per split; without `splits`
the one split is the input's split name), each file's class, label (its position in the
class scheme) and attributes in the file table, and `classes.txt`: the class scheme,
the input split's sorted class names or the `classes` file given. The artifact declares
its splits, so another dataset can read each of them (`split: val`).
"""

from __future__ import annotations

import math
import posixpath
import random
from collections.abc import Mapping
from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from ..artifact.output import Output
from ..errors import BadInputError, SourceError
from ..sources.classes import default_classes, read_classes
from ..sources.layouts import check_split
from ..sources.members import MemberRef, MemberSet, read_members
from .base import Inputs, InputSpec, Params, Plan, Recipe
from .imagecheck import OnError, usable
from .naming import record_names
from .select import pick_split

_CHUNK = 128  # images per task, as select
_MAX = 100_000_000  # more images than any source holds


class SampleParams(Params):
    # `duplicates` came with version 1 shipped: its default draws as before (see `keyed`)
    added_later: ClassVar[frozenset[str]] = frozenset({"duplicates"})

    split: str = "train"
    seed: int = 0
    n: int | None = Field(default=None, gt=0, le=_MAX)
    per_class: int | None = Field(default=None, gt=0, le=_MAX)
    short_classes: Literal["fail", "keep"] = "fail"
    splits: dict[str, float] | None = None
    validate_images: bool = True
    on_error: OnError = "fail"
    # together: exact copies (one xxh3) all on one side of `splits` (`registry audit`)
    duplicates: Literal["any", "together"] = "any"

    @field_validator("splits")
    @classmethod
    def _fractions(cls, splits: dict[str, float] | None) -> dict[str, float] | None:
        if splits is None:
            return None
        if not splits:
            raise ValueError("give at least one split, e.g. {train: 0.8, val: 0.2}")
        for name, fraction in splits.items():
            try:  # the one rule for split names (layouts.check_split), and no leading '_'
                check_split(name, "splits")
            except SourceError as exc:
                raise ValueError(exc.message.removeprefix("splits: ")) from None
            if name.startswith("_"):
                raise ValueError(f"{name!r} is not a split name (it may not start with '_')")
            if not (math.isfinite(fraction) and 0 < fraction <= 1):
                raise ValueError(f"{name}: {fraction} is not a fraction in (0, 1]")
        total = math.fsum(splits.values())
        if abs(total - 1) > 1e-9:
            raise ValueError(f"the fractions sum to {total:g}, not 1")
        return splits

    @model_validator(mode="after")
    def _one_count(self) -> SampleParams:
        if self.n is not None and self.per_class is not None:
            raise ValueError("give n (images in all) or per_class (images per class), not "
                             "both")
        if self.n is None and self.per_class is None and self.splits is None:
            raise ValueError("give n, per_class or splits (or splits with one of the others)")
        if self.duplicates == "together" and self.splits is None:
            raise ValueError("duplicates: together keeps exact copies on one side of a split; "
                             "give splits too")
        return self


def largest_remainder(count: int, fractions: Mapping[str, float]) -> dict[str, int]:
    """`count` divided by `fractions` (which sum to 1) into whole numbers summing to
    `count`: floors, then one more to the largest remainders (ties: the earlier name);
    where `count` allows one per split, a split left at 0 takes one from the largest
    (ties: the earlier name), so every class appears in every split it can."""
    names = sorted(fractions)
    exact = {s: count * fractions[s] for s in names}
    counts = {s: math.floor(exact[s]) for s in names}
    short = count - sum(counts.values())
    for s in sorted(names, key=lambda s: (-(exact[s] - counts[s]), s))[:short]:
        counts[s] += 1
    if count >= len(names):
        for s in names:
            if counts[s] == 0:
                donor = min(names, key=lambda d: (-counts[d], d))
                counts[donor] -= 1
                counts[s] = 1
    return counts


class Sample(Recipe):
    name = "sample"
    version = 1
    Params = SampleParams
    inputs: ClassVar[Mapping[str, InputSpec]] = {
        "images": InputSpec("images", doc="a labelled source or dataset of images"),
        "classes": InputSpec("file", required=False,
                             doc="the class scheme: one class name a line (else sorted names)"),
    }

    @classmethod
    def out_splits(cls, params: SampleParams) -> list[str]:
        return sorted(params.splits) if params.splits else [params.split]

    @classmethod
    def classes(cls, params: SampleParams, inputs: Inputs, images: MemberSet) -> list[str]:
        if "classes" in inputs.files:
            return read_classes(inputs.files["classes"])
        return default_classes(images)

    @classmethod
    def plan(cls, params: SampleParams, inputs: Inputs) -> Plan:
        images = pick_split(inputs.images["images"], params.split, "images")
        labelled = params.per_class is not None or params.splits is not None
        names = images.labels.tolist() if images.labels is not None else [""] * len(images)
        if labelled:
            _check_labels(images, names, "per_class" if params.per_class else "splits")
        if params.n is not None and params.n > len(images):
            raise BadInputError(f"{images.where}: n: {params.n} asked for, but it holds only "
                                f"{len(images)} images")
        scheme = cls.classes(params, inputs, images)
        position = {name: i for i, name in enumerate(scheme)}

        rng = random.Random(params.seed)
        chosen = set(rng.sample(range(len(images)), params.n)) if params.n else None
        by_class: dict[str, list[int]] = {}
        for i, name in enumerate(names):  # in sorted member order
            if chosen is None or i in chosen:
                by_class.setdefault(name, []).append(i)
        drawn: list[tuple[str, str, int]] = []  # (split, class, member), in draw order
        for klass in sorted(by_class):
            members = by_class[klass]
            rng.shuffle(members)
            if params.per_class is not None:
                if len(members) < params.per_class and params.short_classes == "fail":
                    raise BadInputError(
                        f"{images.where}: class {klass!r} has {len(members)} images, fewer "
                        f"than per_class: {params.per_class} (set short_classes: keep to "
                        "take all it has)")
                members = members[:params.per_class]
            if klass and klass not in position:
                raise BadInputError(f"{images.where}: {images.names[members[0]]!r} is of class "
                                    f"{klass!r}, which {inputs.files['classes']} lacks")
            counts = largest_remainder(len(members), params.splits) if params.splits else \
                {params.split: len(members)}
            start = 0
            for split in sorted(counts):
                drawn.extend((split, klass, i) for i in members[start:start + counts[split]])
                start += counts[split]
        if params.duplicates == "together":
            drawn = _copies_together(images, drawn)
        empty = sorted(set(cls.out_splits(params)) - {split for split, _, _ in drawn})
        if empty:
            raise BadInputError(f"{images.where}: split {empty[0]!r} would be empty: "
                                f"{len(drawn)} images drawn, no class large enough to give it "
                                "one; draw more images, or use fewer splits")
        # `<split>/<class>/<file name>`; files numbered per folder keep whole names (naming.py)
        names = [images.names[i] for _, _, i in drawn]
        short = [f"{split}/{klass}/{posixpath.basename(n)}" if klass else f"{split}/{n}"
                 for (split, klass, _), n in zip(drawn, names, strict=True)]
        whole = [f"{split}/{klass}/{n}" if klass else f"{split}/{n}"
                 for (split, klass, _), n in zip(drawn, names, strict=True)]
        paths = record_names(names, short, whole, "written as", images.where)[0]
        todo = [(path, images[i], position.get(klass, -1))
                for path, (_, klass, i) in zip(paths, drawn, strict=True)]
        todo.sort(key=lambda t: t[0])  # tasks in output order: neighbours read together
        return Plan([todo[i:i + _CHUNK] for i in range(0, len(todo), _CHUNK)], context=scheme)

    @classmethod
    def run(cls, params: SampleParams, task: list[tuple[str, MemberRef, int]],
            out: Output) -> int:
        written = 0
        for i, ref, data in usable(read_members(ref for _, ref, _ in task), out,
                                   params.on_error, validate=params.validate_images):
            path, _, label = task[i]
            out.write(path, data, label=label if label >= 0 else None, member=ref.origin,
                      source=ref.source, class_name=ref.label, attrs=ref.attrs, xxh3=ref.xxh3)
            written += 1
        return written

    @classmethod
    def finish(cls, params: SampleParams, inputs: Inputs, results: list[int],
               out: Output, context: list[str] | None = None) -> None:
        scheme = context if context is not None else cls.classes(
            params, inputs, pick_split(inputs.images["images"], params.split, "images"))
        if scheme:
            out.write("classes.txt", "".join(f"{c}\n" for c in scheme).encode())
        out.splits(cls.out_splits(params))


def _copies_together(images: MemberSet, drawn: list[tuple[str, str, int]]
                     ) -> list[tuple[str, str, int]]:
    """`drawn` with every member of one content (xxh3) moved to the split the first of
    them in `drawn` went to."""
    if images.digests is None:
        raise BadInputError(f"{images.where}: records no xxh3 of its images, which "
                            "duplicates: together needs")
    first: dict[bytes, str] = {}
    return [(first.setdefault(images.digests[i].tobytes(), split), klass, i)
            for split, klass, i in drawn]


def _check_labels(images: MemberSet, names: list[str], why: str) -> None:
    """Every member has a class name usable as one folder name."""
    for i, name in enumerate(names):
        if not name:
            raise BadInputError(f"{images.where}: its images carry no class names ("
                                f"{images.names[i]!r} has none), which {why} needs; name a "
                                "layout that gives them, e.g. image-folder")
        if "/" in name or name in (".", "..") or name.startswith("."):
            raise BadInputError(f"{images.where}: {images.names[i]!r} is of class {name!r}, "
                                "which cannot be a folder name")


__all__ = ["Sample", "SampleParams", "largest_remainder"]
