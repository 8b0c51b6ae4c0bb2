"""Label scheme `table`: a label folder of `classes.txt` (one class name a line, line *i*
is label *i*) and `table.csv` (`<file name>,<class>` a line), as a dataset that ships
its labels beside the images would."""

from __future__ import annotations

import csv
import os

from dataset_registry.errors import BadInputError
from dataset_registry.recipes.schemes import LabelScheme
from dataset_registry.sources.classes import read_classes


class Table(LabelScheme):
    name = "table"

    def classes(self) -> list[str]:
        return read_classes(os.path.join(self.folder, "classes.txt"))

    def class_of(self, names, split, where):  # type: ignore[no-untyped-def]
        path = os.path.join(self.folder, "table.csv")
        with open(path, newline="", encoding="utf-8") as f:
            table = dict(csv.reader(f))
        try:
            return [table[os.path.basename(name)] for name in names]
        except KeyError as exc:
            raise BadInputError(f"{where}: {exc.args[0]} is not in {path}") from None
