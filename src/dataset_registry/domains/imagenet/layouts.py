"""The ImageNet source layouts: the official val and train tars (or their extracted
folders) and the Kaggle download. They enter no fingerprint beyond their members'
logical names (`keyed = False`), as when they were the only layouts: every key stays.
"""

from __future__ import annotations

import re

from ...errors import SourceError
from ...sources.layouts import Entry, Layout

_VAL = re.compile(r"^ILSVRC2012_val_\d{8}\.JPEG$")
_WNID = re.compile(r"^n\d{8}$")
_KAGGLE = "ILSVRC/Data/CLS-LOC/"
_KAGGLE_META = ("LOC_synset_mapping.txt", "LOC_val_solution.csv")


class _ImageNetLayout(Layout):
    keyed = False

    def refuse(self, origin: str) -> SourceError:
        return SourceError(f"member {origin!r} does not fit layout {self.name!r}: expected "
                           f"{self.expects}")


class ImageNetVal(_ImageNetLayout):
    name = "imagenet-val"
    expects = "flat ILSVRC2012_val_%08d.JPEG files, as ILSVRC2012_img_val.tar or a folder"

    def classify(self, origin: str, is_tar: bool) -> Entry | None:
        if "/" not in origin and _VAL.match(origin):
            return Entry("val", origin)
        raise self.refuse(origin)


class ImageNetTrain(_ImageNetLayout):
    name = "imagenet-train"
    expects = ("per-class <wnid>.tar members inside ILSVRC2012_img_train.tar, or a folder of "
               "<wnid>/ folders")

    def nested(self, path: str) -> bool:
        return path.endswith(".tar") and "/" not in path  # only the class tars at the top

    def classify(self, origin: str, is_tar: bool) -> Entry | None:
        parts = origin.split("/")
        if len(parts) == 2 and parts[1]:
            top = parts[0]
            wnid = top.removesuffix(".tar") if is_tar else top
            if _WNID.match(wnid) and top.endswith(".tar") == is_tar:
                return Entry("train", f"{wnid}/{parts[1]}", label=wnid)
        raise self.refuse(origin)


class KaggleClsLoc(_ImageNetLayout):
    name = "kaggle-cls-loc"
    expects = ("a folder holding ILSVRC/Data/CLS-LOC/{train,val}/, LOC_synset_mapping.txt "
               "and LOC_val_solution.csv")
    tar = False

    def classify(self, origin: str, is_tar: bool) -> Entry | None:
        parts = origin.split("/")
        if origin in _KAGGLE_META:
            return Entry("meta", origin)
        if origin.startswith(_KAGGLE + "train/") and len(parts) == 6 and _WNID.match(parts[4]):
            return Entry("train", f"{parts[4]}/{parts[5]}", label=parts[4])
        if origin.startswith(_KAGGLE + "val/") and len(parts) == 5:
            return Entry("val", parts[4])
        return None  # test/, Annotations/, ImageSets/ and other CSVs are not indexed
