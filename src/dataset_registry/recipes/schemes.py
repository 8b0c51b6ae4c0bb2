"""Label schemes: a `labels` input in a scheme a plugin knows.

classes.py covers what any labelled source carries (its class names, sorted, or a
classes file). Some datasets instead come with a label folder of their own, whose
format only their plugin reads: ImageNet's caffe `val.txt` and synsets (the
`imagenet` scheme, in domains/imagenet/). A recipe with a `labels` input builds the
scheme its `labels_scheme` param names from the plugin table (kind `schemes`,
entry-point group `dataset_registry.schemes`) and asks it, never the files, what
the classes are and which class each image is.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Mapping
from typing import Any, ClassVar

from pydantic import ValidationInfo

from .. import plugins
from ..errors import BadInputError

DEFAULT = "imagenet"
"""The scheme of a `labels` input when a manifest names none: every manifest written
before schemes were plugins meant ImageNet's label folder, and their keys hold only
while the param stays at this default (it is `added_later` in each recipe's params)."""


class LabelScheme(ABC):
    """A label folder read in one scheme: the class names in label order, and each
    image's class. Built once per plan from the folder the manifest names."""

    name: ClassVar[str]
    splits: ClassVar[tuple[str, ...]] = ()  # the splits it can class (empty: any)
    folder_splits: ClassVar[tuple[str, ...]] = ()  # splits classed by their `<class>/` folder
    class_noun: ClassVar[str] = "a class of the scheme"  # for "'x' is not ..." messages
    unique_base_names: ClassVar[bool] = False  # no two images share a file name (skip the check)
    image_ext: ClassVar[str | None] = None  # webdataset: every sample's extension (None: its own)
    reencoded: ClassVar[frozenset[str]] = frozenset()
    """File names the scheme's reference tool re-encodes whatever they hold (tfrecord:
    imagenet_to_gcs.py's PNG and CMYK lists); every other image keeps its bytes."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    @classmethod
    def known_names(cls) -> Collection[str] | None:
        """The class names the scheme knows without reading a folder (to check params such
        as downscale's `classes` when a manifest loads), or None if only its folder says."""
        return None

    @abstractmethod
    def classes(self) -> list[str]:
        """The class names in label order: name *i* is label *i*."""

    @abstractmethod
    def class_of(self, names: Iterable[str], split: str, where: str) -> list[str]:
        """The class name of each member name of `split`; a member the scheme cannot
        class is a BadInputError naming it (and `where`, the input)."""

    def descriptions(self) -> Mapping[str, str]:
        """Class name -> a human description (downscale's classes.txt); default: itself."""
        return {name: name for name in self.classes()}


def scheme_class(name: str) -> type[LabelScheme]:
    """The registered scheme `name`; an unknown name is a PluginError listing the known."""
    return plugins.get("schemes", name)  # type: ignore[no-any-return]


def check_name(name: Any, info: ValidationInfo) -> str:
    """A `labels_scheme` param's value, checked when the manifest loads (a ValueError the
    manifest turns into a file:line message listing the registered schemes)."""
    inputs = (info.context or {}).get("inputs")
    if inputs is not None and "labels" not in inputs:
        raise ValueError(f"{name!r} names the scheme of the labels input, and the dataset "
                         "has none (give inputs.labels, or leave labels_scheme out)")
    if name not in plugins.names("schemes"):
        raise ValueError(f"unknown label scheme {name!r} (registered: "
                         f"{', '.join(plugins.names('schemes')) or 'none'})"
                         f"{plugins.missing_note()}")
    return str(name)


def build(name: str, folder: str, split: str | None = None) -> LabelScheme:
    """The scheme `name` over the label folder `folder`; `split`, if given, must be one
    the scheme can class."""
    scheme = scheme_class(name)(folder)
    if split is not None and scheme.splits and split not in scheme.splits:
        raise BadInputError(f"split {split!r}: with the labels input in scheme {name!r} the "
                            f"split is {' or '.join(scheme.splits)}")
    return scheme
