"""A plugin from outside dataset-registry: a layout and a recipe (here), a store
(`folder_store.py`), an executor (`serial.py`) and a label scheme (`table_scheme.py`),
nothing else.

- layout `flat-labelled`: one flat folder (or tar) of images named `<class>__<rest>`;
- recipe `grayscale`: each image of a split as an 8-bit grayscale PNG `<class>/<stem>.png`;
- store `folder:///PATH`: a local folder under a URL scheme of its own;
- executor `serial://`: the tasks in this process, one after another;
- label scheme `table`: a labels folder of classes.txt + table.csv (file name, class).
"""

from __future__ import annotations

import io
import os
from typing import Any, ClassVar

from PIL import Image

from dataset_registry.errors import SourceError
from dataset_registry.recipes import Inputs, InputSpec, Params, Recipe
from dataset_registry.sources.layouts import Entry, Layout, ignored, is_image_name
from dataset_registry.sources.members import MemberRef, read_members


class FlatLabelled(Layout):
    name = "flat-labelled"
    expects = "one flat folder or tar of images named <class>__<anything>.<ext>"

    def classify(self, origin: str, is_tar: bool) -> Entry | None:
        if ignored(origin) or not is_image_name(origin):
            return None
        if "/" in origin or "__" not in origin:
            raise SourceError(f"member {origin!r} is not <class>__<name> at the top")
        return Entry("train", origin, label=origin.split("__", 1)[0])


class GrayscaleParams(Params):
    split: str = "train"


class Grayscale(Recipe):
    name = "grayscale"
    version = 1
    Params = GrayscaleParams
    inputs: ClassVar[dict[str, InputSpec]] = {"images": InputSpec("images")}

    @classmethod
    def plan(cls, params: Any, inputs: Inputs) -> list[list[MemberRef]]:
        images = list(inputs.images["images"][params.split])
        return [images[i:i + 200] for i in range(0, len(images), 200)]

    @classmethod
    def run(cls, params: Any, task: list[MemberRef], out: Any) -> int:
        for ref, data in read_members(task):
            buf = io.BytesIO()
            Image.open(io.BytesIO(data)).convert("L").save(buf, format="PNG")
            stem = os.path.splitext(ref.name)[0]
            out.write(f"{ref.label}/{stem}.png", buf.getvalue(), member=ref.origin,
                      source=ref.source, class_name=ref.label)
        return len(task)
