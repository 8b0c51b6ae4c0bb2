"""The generic layouts pass the shipped layout suite (dataset_registry.testing.layouts)."""

from __future__ import annotations

import csv
import io

from dataset_registry.testing.layouts import LayoutSuite
from dataset_registry.testing.sources import synthetic_images, write_files, write_image_folder


class TestImageFolder(LayoutSuite):
    layout = "image-folder"

    def write_source(self, folder):
        write_image_folder(folder, n=12, classes=3)


class TestImageFolderWithSplitsAndMetadata(LayoutSuite):
    layout = "image-folder"

    def write_source(self, folder):
        images = synthetic_images(12, 3)
        write_files(folder, {f"{'test' if i % 4 == 0 else 'train'}/{name}": data
                             for i, (name, data) in enumerate(sorted(images.items()))})
        rows = "".join(f'{{"file_name": "{p.relative_to(folder / "train").as_posix()}", '
                       f'"row": {i}}}\n' for i, p in enumerate(sorted(folder.glob("train/*/*"))))
        (folder / "train" / "metadata.jsonl").write_text(rows)


class TestFiles(LayoutSuite):
    layout = "files"

    def write_source(self, folder):
        images = synthetic_images(12, 3)
        flat = {f"images/{name.replace('/', '-')}": data for name, data in images.items()}
        write_files(folder, flat)
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["file_name", "label", "split", "weight"])
        for i, name in enumerate(sorted(flat)):
            writer.writerow([name, name.split("-")[1], "val" if i % 3 == 0 else "train", i])
        (folder / "labels.csv").write_text(text.getvalue())
