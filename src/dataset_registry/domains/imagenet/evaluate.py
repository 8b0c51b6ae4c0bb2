"""`registry eval`: the ILSVRC devkit's classification ("cls-only") error, top-1..top-5.

Predictions: one line per val image, in the order of the dataset's
`val/files.txt`, either up to five labels best first (`labels`, 0-based subset
labels as in `classes.txt`), or the devkit's five numbers per guess
(`label xmin ymin xmax ymax`, labels 1-based as the devkit writes them).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Literal

from ...errors import BadInputError

Format = Literal["auto", "labels", "devkit"]
MAX_GUESSES = 5


def read_predictions(path: str, n_classes: int, fmt: Format = "auto") -> list[list[int]]:
    try:
        with open(path, encoding="utf-8") as f:
            lines = [line.split() for line in f]
    except OSError as exc:
        raise BadInputError(f"{path}: cannot read predictions: {exc.strerror}") from None
    if fmt == "auto":
        fmt = "labels" if all(len(t) <= MAX_GUESSES for t in lines) else "devkit"
    out = []
    for number, tokens in enumerate(lines, 1):
        if not tokens:
            raise BadInputError(f"{path}:{number}: empty line: every val image needs a guess")
        try:
            values = [int(t) for t in tokens]
        except ValueError:
            raise BadInputError(f"{path}:{number}: not integers: {' '.join(tokens)!r}") from None
        if fmt == "devkit":
            if len(values) % 5 or len(values) > 5 * MAX_GUESSES:
                raise BadInputError(f"{path}:{number}: devkit format has 5 numbers per guess "
                                    f"(label xmin ymin xmax ymax), at most {MAX_GUESSES} guesses; "
                                    f"got {len(values)} numbers")
            guesses = [v - 1 for v in values[::5]]
        else:
            if len(values) > MAX_GUESSES:
                raise BadInputError(f"{path}:{number}: at most {MAX_GUESSES} labels per line, "
                                    f"got {len(values)}")
            guesses = values
        for g in guesses:
            if not 0 <= g < n_classes:
                shown = g + 1 if fmt == "devkit" else g
                valid = f"1..{n_classes}" if fmt == "devkit" else f"0..{n_classes - 1}"
                raise BadInputError(f"{path}:{number}: label {shown} is out of range {valid}")
        out.append(guesses)
    return out


def topk_errors(truth: Sequence[int], guesses: Sequence[Sequence[int]]) -> list[float]:
    """Error at k = 1..5: the share of images whose label is not among the first k guesses."""
    n = len(truth)
    return [sum(t not in g[:k] for t, g in zip(truth, guesses, strict=True)) / n
            for k in range(1, MAX_GUESSES + 1)]


def evaluate_dataset(dataset_dir: str, predictions: str, fmt: Format = "auto"
                     ) -> tuple[list[float], int, int]:
    """(errors at k = 1..5, number of val images, number of classes) for a tiny dataset."""
    truth_path = os.path.join(dataset_dir, "val", "ground_truth.txt")
    classes_path = os.path.join(dataset_dir, "classes.txt")
    if not (os.path.exists(truth_path) and os.path.exists(classes_path)):
        raise BadInputError(f"{dataset_dir}: has no val/ground_truth.txt and classes.txt; "
                            "eval needs a downscale dataset with a val split")
    with open(classes_path, encoding="utf-8") as f:
        n_classes = sum(1 for _ in f)
    with open(truth_path, encoding="utf-8") as f:
        truth = [int(line) for line in f]
    guesses = read_predictions(predictions, n_classes, fmt)
    if len(guesses) != len(truth):
        raise BadInputError(f"{predictions}: {len(guesses)} lines, but the val set has "
                            f"{len(truth)} images (one line per image, in val/files.txt order)")
    return topk_errors(truth, guesses), len(truth), n_classes
