"""This project's plugin: a layout and a recipe, registered by the calls at the bottom
when a `registry` command loads the project (registry.toml: `plugins = ["my_plugin"]`).

A plugin is Python code run with your rights, by `registry` and by its worker processes:
list only modules you trust in registry.toml.

- layout `my-flat`: one flat folder (or tar) of images named `<class>__<anything>.<ext>`
  (e.g. `cat__0001.jpg`), all in the split `train`;
- recipe `my-grayscale`: each image of a split as an 8-bit grayscale PNG, at most `size`
  pixels on its longer side, written as `<class>/<stem>.png`, plus `count.txt`.

A recipe's key holds this module's source and its `version`: edit the module and what
it built is built again (raise `version` whenever what it writes changes).
"""

from __future__ import annotations

import io
import posixpath
from collections.abc import Mapping
from typing import Any, ClassVar

from PIL import Image
from pydantic import Field

from dataset_registry.artifact.output import Output
from dataset_registry.errors import SourceError
from dataset_registry.plugins import register
from dataset_registry.recipes import Inputs, InputSpec, Params, Recipe
from dataset_registry.recipes.select import pick_split
from dataset_registry.sources.layouts import Entry, Layout, Options, ignored, is_image_name
from dataset_registry.sources.members import MemberRef, read_members


class MyFlatOptions(Options):
    """The source's `options:` in a manifest (strict: an unknown key is a file:line error)."""

    separator: str = "__"  # between the class name and the rest of a file's name


class MyFlat(Layout):
    """Says, for each file of a source, its split, its name there and its class."""

    name = "my-flat"
    expects = "one flat folder or tar of images named <class>__<anything>.<ext>"
    Options = MyFlatOptions

    def classify(self, origin: str, is_tar: bool) -> Entry | None:
        if ignored(origin) or not is_image_name(origin):
            return None  # hidden files, OS litter, files that are not images: left out
        label, sep, _ = origin.partition(self.options.separator)
        if "/" in origin or not sep or not label:
            raise SourceError(f"{origin!r} is not <class>{self.options.separator}<name> "
                              "at the top of the source")
        return Entry("train", origin, label=label)


class MyGrayscaleParams(Params):
    """What a dataset's `params:` may set (strict, as the options above)."""

    split: str = "train"
    size: int = Field(default=64, gt=0, le=4096)  # the longer side, at most
    per_task: int = Field(default=100, gt=0)  # images a task converts


class MyGrayscale(Recipe):
    name = "my-grayscale"
    version = 1
    Params = MyGrayscaleParams
    inputs: ClassVar[Mapping[str, InputSpec]] = {
        "images": InputSpec("images", doc="a source or dataset of images")}

    @classmethod
    def plan(cls, params: Any, inputs: Inputs) -> list[list[MemberRef]]:
        """On the coordinator: the work as tasks that pickle (here lists of member refs)."""
        images = pick_split(inputs.images["images"], params.split, "images")
        refs = list(images)
        return [refs[i:i + params.per_task] for i in range(0, len(refs), params.per_task)]

    @classmethod
    def run(cls, params: Any, task: list[MemberRef], out: Output) -> int:
        """In a worker: one task's files, written through `out` (which records each one's
        size and hash); returns a small result for `finish`."""
        for ref, data in read_members(task):
            image = Image.open(io.BytesIO(data)).convert("L")
            image.thumbnail((params.size, params.size))
            png = io.BytesIO()
            image.save(png, format="PNG")
            stem = posixpath.splitext(ref.name)[0]
            out.write(f"{ref.label}/{stem}.png", png.getvalue(), member=ref.origin,
                      source=ref.source, class_name=ref.label)
        return len(task)

    @classmethod
    def finish(cls, params: Any, inputs: Inputs, results: list[int], out: Output,
               context: Any = None) -> None:
        """On the coordinator, once every task is done (results in plan order)."""
        out.write("count.txt", f"{sum(results)}\n".encode())


register("layouts", MyFlat.name, MyFlat)
register("recipes", MyGrayscale.name, MyGrayscale)
