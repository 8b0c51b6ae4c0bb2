"""The recipe table: name -> Recipe class."""

from __future__ import annotations

from .base import Inputs, InputSpec, Params, Recipe
from .downscale import DownscaleRecipe
from .recordio import RecordIO
from .sample import Sample
from .select import Calibration, Select
from .shards import ByClass
from .tfrecord import TFRecord
from .webdataset import WebDataset

RECIPES: dict[str, type[Recipe]] = {
    r.name: r for r in (Select, Calibration, DownscaleRecipe, ByClass, RecordIO, WebDataset,
                          TFRecord, Sample)}

__all__ = ["RECIPES", "InputSpec", "Inputs", "Params", "Recipe"]
