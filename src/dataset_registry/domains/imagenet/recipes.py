"""ImageNet's recipes: `calibration`, CK's `dataset-imagenet-calibration` package.

The chosen val JPEGs copied unchanged into one flat folder, and `val_map.txt`
with `<file name> <label>` a line, in list order (a list may repeat an image, as
`first.1.dup.5` does: one file, five lines). Registered through this package's
`dataset_registry.recipes` entry point; its module is inside the dataset_registry
package, so it keys by name and version like a built-in recipe (keys.recipe_code_key).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar

from ...errors import BadInputError
from ...recipes.base import Inputs, InputSpec
from ...recipes.select import Entry, Select, SelectParams, pick_split
from .labels import Scheme, convert, ground_truth

if TYPE_CHECKING:  # an Output is handed in: writing one is the engine's import
    from ...artifact.output import Output


class CalibrationParams(SelectParams):
    labels: Scheme = "sorted0"
    check_labels: bool = True


class Calibration(Select):
    """CK `dataset-imagenet-calibration`: selected val JPEGs plus `val_map.txt`."""

    name = "calibration"
    version = 1
    flat = True
    Params = CalibrationParams
    inputs: ClassVar[Mapping[str, InputSpec]] = {
        **Select.inputs,
        "labels": InputSpec("file", doc="folder with caffe_val.txt (sorted0 ground truth)"),
    }

    @classmethod
    def labels_for(cls, params: CalibrationParams, inputs: Inputs,
                   entries: list[Entry]) -> dict[str, int]:
        truth = ground_truth(inputs.files["labels"])
        labels: dict[str, int] = {}
        for e in entries:
            known = truth.get(e.name)
            if e.label is None and known is None:
                raise BadInputError(f"{e.where}: {e.name} has no label in the list and none in "
                                    f"the ground truth {inputs.files['labels']}")
            label = e.label if e.label is not None else known
            if params.check_labels and known is not None and label != known:
                raise BadInputError(f"{e.where}: {e.name} is labelled {label}, but the ground "
                                    f"truth says {known} (set check_labels: false to keep it)")
            labels[e.name] = label
        return labels

    @classmethod
    def finish(cls, params: CalibrationParams, inputs: Inputs, results: list[list[str]],
               out: Output, context: tuple[list[Entry], dict[str, int]] | None = None) -> None:
        if context is None:  # called without the plan's (entries, labels): work them out
            images = pick_split(inputs.images["images"], params.split, "images")
            entries = cls.entries(params, inputs, images)
            context = (entries, cls.labels_for(params, inputs, entries))
        entries, labels = context
        skipped = {name for names in results for name in names}
        lines = [f"{os.path.basename(e.name)} {convert(labels[e.name], params.labels)}\n"
                 for e in entries if e.name not in skipped]
        out.write("val_map.txt", "".join(lines).encode())
