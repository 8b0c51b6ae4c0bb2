"""Label files and label schemes (REFERENCE §1): name the scheme, never guess it.

`sorted0`: 0..999, WNIDs sorted (caffe val.txt, CK/MLPerf val_map.txt, im2rec).
`sorted1`: sorted0 + 1 (TF imagenet_to_gcs.py TFRecords).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cache
from types import MappingProxyType
from typing import Any, Literal

from ...errors import BadInputError
from ...recipes.lists import read_list

Scheme = Literal["sorted0", "sorted1"]

GROUND_TRUTH = "caffe_val.txt"  # ILSVRC2012 val ground truth, sorted0
SYNSETS = "caffe_synsets.txt"  # the 1000 WNIDs, sorted
SYNSET_WORDS = "caffe_synset_words.txt"
DATA = "data/labels"  # the label folder shipped in this package (see data/SOURCES.md)
SHIPPED = f"pkg:{__package__}/{DATA}"  # what a manifest names it by

# The hazards in the real files (REFERENCE §4): imagenet_to_gcs.py re-encodes exactly the
# PNG impostor and the CMYK train names; the CMYK val image is on none of its lists.
PNG_IMPOSTOR = "n02105855_2933.JPEG"
CMYK_TRAIN = (
    "n01739381_1309", "n02077923_14822", "n02447366_23489", "n02492035_15739",
    "n02747177_10752", "n03018349_4028", "n03062245_4620", "n03347037_9675", "n03467068_12171",
    "n03529860_11437", "n03544143_17228", "n03633091_5218", "n03710637_5125", "n03961711_5286",
    "n04033995_2932", "n04258138_17003", "n04264628_27969", "n04336792_7448", "n04371774_5854",
    "n04596742_4225", "n07583066_647", "n13037406_4650",
)
CMYK_VAL = "ILSVRC2012_val_00019877.JPEG"


def convert(label: int, scheme: Scheme) -> int:
    """A sorted0 label in `scheme`."""
    return label + 1 if scheme == "sorted1" else label


def _open(labels_dir: str, name: str) -> Any:
    """A label file of the labels folder, or a BadInputError naming the folder and file."""
    path = os.path.join(labels_dir, name)
    try:
        return open(path, encoding="utf-8")
    except FileNotFoundError:
        raise BadInputError(f"labels folder {labels_dir}: no {name} (it must hold "
                            f"{GROUND_TRUTH}, {SYNSETS} and {SYNSET_WORDS})") from None
    except OSError as exc:
        raise BadInputError(f"{path}: cannot read ({exc.strerror or exc})") from None


def ground_truth(labels_dir: str) -> Mapping[str, int]:
    """Val image name -> sorted0 label, from the shipped caffe val.txt (cached per file state)."""
    path = os.path.join(labels_dir, GROUND_TRUTH) if os.path.isdir(labels_dir) else labels_dir
    _open(os.path.dirname(path), os.path.basename(path)).close()  # missing: named
    st = os.stat(path)
    return _ground_truth(path, st.st_size, st.st_mtime_ns)


@cache
def _ground_truth(path: str, size: int, mtime_ns: int) -> Mapping[str, int]:
    with open(path, encoding="utf-8") as f:
        tokens = f.read().split()
    names, labels = tokens[0::2], tokens[1::2]
    if len(names) == len(labels) and all(map(str.isdigit, labels)):
        return MappingProxyType(dict(zip(names, map(int, labels), strict=True)))
    # not the plain two-column shape: the careful parser names the bad line
    return MappingProxyType({n: lab for n, lab, _ in read_list(path) if lab is not None})


def synsets(labels_dir: str) -> list[str]:
    with _open(labels_dir, SYNSETS) as f:
        return [line.strip() for line in f if line.strip()]


def synset_words(labels_dir: str) -> dict[str, str]:
    words = {}
    with _open(labels_dir, SYNSET_WORDS) as f:
        for line in f:
            wnid, _, name = line.rstrip("\n").partition(" ")
            words[wnid] = name
    return words


@cache
def known_wnids() -> tuple[str, ...]:
    """The 1000 ILSVRC2012 WNIDs, sorted (sorted0 order), from the package's label data."""
    from importlib import resources

    text = resources.files(__package__).joinpath(DATA, SYNSETS).read_text()
    return tuple(text.split())
