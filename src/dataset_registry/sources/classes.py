"""Class schemes: the order that turns class names into the integer labels a format
stores. Explicit, never guessed (REFERENCE §1 shows what a guessed order costs):

- `sorted`: the input's distinct class names, sorted as Python sorts strings, which
  is how torchvision's ImageFolder and im2rec number the folders they find;
- a classes file (a `file` input): one class name a line, line *i* is label *i*.

A label folder in a format of its own (ImageNet's caffe val.txt and synsets: its
`sorted0` and `sorted1` over the 1000 WNIDs) is a plugin's label scheme: schemes.py.
"""

from __future__ import annotations

import numpy as np

from ..errors import BadInputError
from .members import MemberSet


def read_classes(path: str) -> list[str]:
    """The class names of a classes file, in label order."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError:
        raise BadInputError(f"{path}: not UTF-8 text") from None
    except IsADirectoryError:
        raise BadInputError(f"{path}: is a folder; a classes file has one class name a line"
                            ) from None
    except OSError as exc:
        raise BadInputError(f"{path}: cannot be read ({exc.strerror})") from None
    return parse_classes(text, path)


def parse_classes(text: str, where: str,
                  error: type[BadInputError] = BadInputError) -> list[str]:
    """A classes file's text as class names in label order: one a line, stripped,
    trailing blank lines ignored; an empty or repeated name, or none at all, is an
    `error` naming `where` and the line."""
    names = [line.strip() for line in text.splitlines()]
    while names and not names[-1]:
        names.pop()
    seen: dict[str, int] = {}
    for number, name in enumerate(names, 1):
        if not name:
            raise error(f"{where}:{number}: an empty class name")
        if name in seen:
            raise error(f"{where}:{number}: class {name!r} again (first on line "
                        f"{seen[name]})")
        seen[name] = number
    if not names:
        raise error(f"{where}: no class names")
    return names


def default_classes(*sets: MemberSet) -> list[str]:
    """The scheme a recipe uses without a classes file, over one or more member sets (e.g.
    every split of a source): the class names sorted as Python sorts strings (what
    torchvision's ImageFolder does with class folders: "10" before "2"); but where every
    label is a whole number a labels table gave (Hugging Face's imagefolder keeps those),
    each keeps its value: class *i* is named `str(i)`, for every i up to the largest
    (some may have no images anywhere: `present_classes` says which do)."""
    names = present_classes(*sets)
    if names and all(_whole_numbers(s) for s in sets if s.class_names()):
        return [str(i) for i in range(max(int(n) for n in names) + 1)]
    return sorted(names)


def present_classes(*sets: MemberSet) -> set[str]:
    """The class names some image of `sets` has."""
    return set().union(*(s.class_names() for s in sets))


def _whole_numbers(members: MemberSet) -> bool:
    """Whether every labelled member of `members` has its label as a whole number."""
    if members.values is None or members.labels is None:
        return False
    names = members.labels.tolist()
    return all(v >= 0 for v, n in zip(members.values.tolist(), names, strict=True) if n)


def label_indices(members: MemberSet, classes: list[str]) -> np.ndarray:
    """Each member's label (its class's position in `classes`), int32; an unlabelled
    member or a class the scheme lacks is an error naming the member."""
    if members.labels is None:
        raise BadInputError(f"{members.where}: its images carry no class names (the layout "
                            "gives none); name a layout that does, e.g. image-folder")
    position = {name: i for i, name in enumerate(classes)}
    names = members.labels.tolist()
    out = np.empty(len(names), dtype=np.int32)
    for i, name in enumerate(names):
        label = position.get(name)
        if label is None:
            what = "has no class" if not name else f"is of class {name!r}, which the scheme " \
                f"lacks (it has {len(classes)}: {', '.join(classes[:5])}...)"
            raise BadInputError(f"{members.where}: {members.names[i]!r} {what}")
        out[i] = label
    return out
