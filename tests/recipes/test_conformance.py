"""Every generic recipe passes the shipped recipe suite (dataset_registry.testing.recipes)
over the generic synthetic source: 24 PNG/JPEG images in 3 class folders."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from dataset_registry.recipes.downscale import DownscaleRecipe
from dataset_registry.recipes.recordio import RecordIO
from dataset_registry.recipes.sample import Sample
from dataset_registry.recipes.select import Select
from dataset_registry.recipes.shards import ByClass
from dataset_registry.recipes.tfrecord import TFRecord
from dataset_registry.recipes.webdataset import WebDataset
from dataset_registry.testing import Echo
from dataset_registry.testing.recipes import RecipeSuite

SHARDS = {"split": "val", "require_all_classes": False, "validate_images": False,
          "on_error": "skip"}
# the suite's source has no labels input for a scheme to read (tests/recipes/test_schemes.py)
NO_LABELS = {"labels_scheme": "the scheme of a labels input; the generic source has none"}


class TestEcho(RecipeSuite):
    recipe = Echo
    params: ClassVar[dict[str, Any]] = {"chunk": 5}
    vary: ClassVar[dict[str, Any]] = {"split": "val", "chunk": 7, "validate_images": False,
                                     "on_error": "skip"}


class TestSelect(RecipeSuite):
    recipe = Select
    params: ClassVar[dict[str, Any]] = {"split": "train", "folders": True}
    vary: ClassVar[dict[str, Any]] = {"split": "val", "first": 10, "validate_images": False,
                                     "on_error": "skip", "folders": False}


class TestSample(RecipeSuite):
    recipe = Sample
    params: ClassVar[dict[str, Any]] = {"seed": 1, "splits": {"train": 0.5, "val": 0.5}}
    vary: ClassVar[dict[str, Any]] = {
        "split": "val", "seed": 2, "n": 12, "per_class": 4, "short_classes": "keep",
        "splits": {"a": 0.25, "b": 0.75}, "validate_images": False, "on_error": "skip"}


class TestByClass(RecipeSuite):
    recipe = ByClass
    unvaried = NO_LABELS
    vary: ClassVar[dict[str, Any]] = SHARDS


class TestWebDataset(RecipeSuite):
    recipe = WebDataset
    unvaried = NO_LABELS
    params: ClassVar[dict[str, Any]] = {"shard_count": 5}
    vary: ClassVar[dict[str, Any]] = {**SHARDS, "shard_count": 6, "shard_bytes": 4096,
                                     "prefix": "shard"}


class TestRecordIO(RecipeSuite):
    recipe = RecordIO
    unvaried = NO_LABELS
    vary: ClassVar[dict[str, Any]] = {**SHARDS, "shuffle": False, "resize": 8, "quality": 80}


class TestTFRecord(RecipeSuite):
    recipe = TFRecord
    unvaried = NO_LABELS
    params: ClassVar[dict[str, Any]] = {"shards": 3}
    vary: ClassVar[dict[str, Any]] = {**SHARDS, "label_offset": 0, "shards": 2}


class TestDownscale(RecipeSuite):
    recipe = DownscaleRecipe
    unvaried = NO_LABELS
    params: ClassVar[dict[str, Any]] = {"width": 8, "height": 6}
    vary: ClassVar[dict[str, Any]] = {
        "width": 9, "height": 7, "fit": "crop", "color": "gray", "luma": "rec601",
        "filter": "lanczos", "classes": 2, "format": "folders", "on_error": "skip",
        "require_all_classes": False}


class TestOutsideGrayscale(RecipeSuite):
    """The outside plugin package's recipe (tests/plugins/outside) certifies itself with
    the shipped suite, as its own test module would."""

    vary: ClassVar[dict[str, Any]] = {"split": "val"}

    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def _import_the_plugin(cls) -> Iterator[None]:
        # Its source folder, not an installed copy: no dist-info, so its entry points do not
        # join the process-wide table; pool workers get sys.path when they start.
        folder = str(Path(__file__).parents[1] / "plugins" / "outside")
        sys.path.insert(0, folder)
        try:
            from outside_registry_plugin import Grayscale

            cls.recipe = Grayscale
            yield
        finally:
            sys.path.remove(folder)


def test_every_built_in_recipe_is_certified_and_in_the_executor_runs():
    """The recipe list is plugins.BUILTIN; these runs name recipes with params of their own,
    so they cannot be derived from it: a new built-in recipe must join both."""
    from dataset_registry.plugins import BUILTIN
    from dataset_registry.testing.executors import EVERY_RECIPE

    suites = {cls.recipe.name for cls in globals().values()
              if isinstance(cls, type) and issubclass(cls, RecipeSuite) and
              isinstance(getattr(cls, "recipe", None), type)}
    assert set(BUILTIN["recipes"]) <= suites, "recipes without a RecipeSuite here"
    assert set(BUILTIN["recipes"]) <= {d["recipe"] for d in EVERY_RECIPE}, \
        "recipes missing from testing.executors.EVERY_RECIPE"
