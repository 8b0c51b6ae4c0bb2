"""`registry eval`: the devkit's top-k classification error, and its bad input."""

import random

import pytest

from dataset_registry import BadInputError
from dataset_registry.domains.imagenet.evaluate import read_predictions, topk_errors


def test_uniform_random_guessing_scores_one_minus_k_over_k(tmp_path):
    rng = random.Random(7)
    n_classes, n_images = 1000, 50_000
    truth = [i % n_classes for i in range(n_images)]
    path = tmp_path / "random.txt"
    path.write_text("".join(" ".join(map(str, rng.sample(range(n_classes), 5))) + "\n"
                            for _ in range(n_images)))
    errors = topk_errors(truth, read_predictions(str(path), n_classes))
    for k, error in enumerate(errors, 1):
        expected = 1 - k / n_classes
        sigma = (expected * (1 - expected) / n_images) ** 0.5
        assert abs(error - expected) < 5 * sigma, (k, error, expected)


def test_perfect_and_devkit_format(tmp_path):
    path = tmp_path / "devkit.txt"
    # devkit: five numbers per guess, 1-based labels; guesses best first
    path.write_text("3 0 0 9 9 1 0 0 9 9\n1 0 0 9 9\n")
    guesses = read_predictions(str(path), 3)
    assert guesses == [[2, 0], [0]]
    assert topk_errors([0, 0], guesses) == [0.5, 0.0, 0.0, 0.0, 0.0]


@pytest.mark.parametrize("text, message", [
    ("0 1\n7\n", r"p.txt:2: label 7 is out of range 0..4"),
    ("0 1 2 3 4 0\n", r"p.txt:1: devkit format has 5 numbers per guess"),
    ("0\n\n1\n", r"p.txt:2: empty line"),
    ("zero\n", r"p.txt:1: not integers"),
    ("6 0 0 1 1\n", r"p.txt:1: label 6 is out of range 1..5"),
])
def test_bad_prediction_files(tmp_path, text, message):
    path = tmp_path / "p.txt"
    path.write_text(text)
    fmt = "devkit" if text.startswith("6 0") else "auto"
    with pytest.raises(BadInputError, match=message):
        read_predictions(str(path), 5, fmt)
