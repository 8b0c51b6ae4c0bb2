"""An outside label scheme for the tests (test_schemes.py): used in-process, and copied as
a project's registry.toml plugin module."""

from __future__ import annotations

import os

from dataset_registry.errors import BadInputError
from dataset_registry.recipes.schemes import LabelScheme
from dataset_registry.sources.classes import read_classes


class Parity(LabelScheme):
    """A label folder of its own: classes.txt (label order) and table.txt, `<file> <class>`
    a line, as a ground truth file is written."""

    name = "parity"

    def classes(self):
        return read_classes(os.path.join(self.folder, "classes.txt"))

    def class_of(self, names, split, where):
        with open(os.path.join(self.folder, "table.txt")) as f:
            table = dict(line.split() for line in f)
        out = []
        for name in names:
            if os.path.basename(name) not in table:
                raise BadInputError(f"{where}: {name} is not in {self.folder}/table.txt")
            out.append(table[os.path.basename(name)])
        return out
