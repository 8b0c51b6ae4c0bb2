"""ImageNet's label files (labels.py) and its label scheme (scheme.py), registered
through this package's own entry points."""

from __future__ import annotations

import pytest

from dataset_registry import BadInputError, plugins
from dataset_registry.core.keys import recipe_code_key
from dataset_registry.domains.imagenet import labels
from dataset_registry.domains.imagenet.scheme import ImageNetScheme
from dataset_registry.recipes import RECIPES, schemes

from ...conftest import LABELS


def test_the_scheme_and_calibration_come_in_through_entry_points():
    assert plugins.get("schemes", "imagenet") is ImageNetScheme
    assert plugins.PLUGINS.origin("schemes", "imagenet").startswith(
        "entry point dataset_registry.schemes:imagenet of dataset-registry")
    assert plugins.PLUGINS.origin("recipes", "calibration").startswith(
        "entry point dataset_registry.recipes:calibration of dataset-registry")
    assert "calibration" not in plugins.BUILTIN["recipes"]
    # inside the dataset_registry package: keyed by name and version, as a built-in
    assert RECIPES["calibration"].__module__ == "dataset_registry.domains.imagenet.recipes"
    assert recipe_code_key(RECIPES["calibration"]) is None


def test_the_scheme_reads_the_shipped_label_folder():
    scheme = schemes.build("imagenet", str(LABELS))
    wnids = (LABELS / "caffe_synsets.txt").read_text().split()
    assert scheme.classes() == wnids and len(wnids) == 1000 and wnids == sorted(wnids)
    assert tuple(wnids) == labels.known_wnids() == tuple(ImageNetScheme.known_names())
    # val: by the caffe ground truth (image 1 is label 65, n01751748); train: by folder
    assert scheme.class_of(["ILSVRC2012_val_00000001.JPEG", "x/ILSVRC2012_val_00000002.JPEG"],
                           "val", "val") == ["n01751748", "n09193705"]
    assert scheme.class_of(["n01440764/n01440764_10026.JPEG"], "train", "t") == ["n01440764"]
    assert scheme.descriptions()["n01440764"] == "tench, Tinca tinca"


def test_a_val_image_without_ground_truth_is_named():
    scheme = schemes.build("imagenet", str(LABELS))
    with pytest.raises(BadInputError, match=r"^my-val: ILSVRC2012_val_00050001\.JPEG has no "
                       r"label in the val ground truth"):
        scheme.class_of(["ILSVRC2012_val_00050001.JPEG"], "val", "my-val")


def test_a_label_folder_missing_a_file_is_named(tmp_path):
    (tmp_path / "caffe_val.txt").write_text("ILSVRC2012_val_00000001.JPEG 0\n")
    scheme = schemes.build("imagenet", str(tmp_path))
    with pytest.raises(BadInputError, match=rf"^labels folder {tmp_path}: no caffe_synsets\.txt"
                       r" \(it must hold caffe_val\.txt, caffe_synsets\.txt and "):
        scheme.classes()


def test_the_reencoded_names_are_imagenet_to_gcs_lists():
    # the PNG impostor and the 22 CMYK train names; the CMYK val image keeps its bytes
    assert len(ImageNetScheme.reencoded) == 23
    assert labels.PNG_IMPOSTOR in ImageNetScheme.reencoded
    assert labels.CMYK_VAL not in ImageNetScheme.reencoded
    assert all(n.endswith(".JPEG") for n in ImageNetScheme.reencoded)


def test_sorted1_is_sorted0_plus_one():
    assert labels.convert(0, "sorted0") == 0 and labels.convert(0, "sorted1") == 1
    assert labels.convert(999, "sorted1") == 1000
