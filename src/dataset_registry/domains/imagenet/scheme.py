"""ImageNet's label scheme (`labels_scheme: imagenet`, the default): the 1000 ILSVRC2012
WNIDs, `sorted0` (labels.py); train images are classed by their `<wnid>/` folder, val
images by the caffe ground truth."""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Mapping
from typing import ClassVar

from ...errors import BadInputError
from ...recipes.schemes import LabelScheme
from . import labels


class ImageNetScheme(LabelScheme):
    name = "imagenet"
    splits = ("train", "val")
    folder_splits = ("train",)
    class_noun = "an ILSVRC2012 WNID"
    unique_base_names = True  # ILSVRC2012 names every image once
    image_ext = "jpg"  # every ImageNet sample was .jpg from the start
    # imagenet_to_gcs.py's _is_png and _is_cmyk lists, by file name (the CMYK val image
    # is on neither: the reference keeps its bytes)
    reencoded: ClassVar[frozenset[str]] = frozenset(
        {labels.PNG_IMPOSTOR, *(f"{n}.JPEG" for n in labels.CMYK_TRAIN)})

    @classmethod
    def known_names(cls) -> Collection[str]:
        return labels.known_wnids()

    def classes(self) -> list[str]:
        return labels.synsets(self.folder)  # sorted WNIDs: label order is WNID order

    def class_of(self, names: Iterable[str], split: str, where: str) -> list[str]:
        if split in self.folder_splits:
            return [n.partition("/")[0] for n in names]
        truth, order = labels.ground_truth(self.folder), self.classes()
        out = []
        for name in names:
            label = truth.get(os.path.basename(name))
            if label is None:
                raise BadInputError(f"{where}: {name} has no label in the val ground truth "
                                    f"{self.folder}")
            out.append(order[label])
        return out

    def descriptions(self) -> Mapping[str, str]:
        return labels.synset_words(self.folder)
