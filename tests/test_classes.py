import numpy as np
import pytest

from dataset_registry import BadInputError
from dataset_registry.classes import label_indices, read_classes, sorted_classes
from dataset_registry.members import MemberRef, MemberSet


def member_set(labels):
    refs = [MemberRef(f"{label or 'x'}/{i}.png", "", 0, 1, f"o{i}", "fp", label)
            for i, label in enumerate(labels)]
    return MemberSet.from_refs("train", "source s", refs, "/nowhere")


def test_sorted_scheme_and_indices():
    s = member_set(["dog", "cat", "dog", "ant"])
    classes = sorted_classes(s)
    assert classes == ["ant", "cat", "dog"]
    names = [r.name for r in s]
    assert dict(zip(names, label_indices(s, classes).tolist(), strict=True)) == \
        {"ant/3.png": 0, "cat/1.png": 1, "dog/0.png": 2, "dog/2.png": 2}


def test_a_classes_file_orders_labels(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_text("dog\ncat\n\n")
    assert read_classes(str(path)) == ["dog", "cat"]
    s = member_set(["cat", "dog"])
    assert label_indices(s, ["dog", "cat"]).tolist() == [1, 0]
    assert label_indices(s, ["dog", "cat"]).dtype == np.int32


@pytest.mark.parametrize("text, message", [
    ("a\nb\na\n", r"classes.txt:3: class 'a' again \(first on line 1\)"),
    ("a\n\nb\n", r"classes.txt:2: an empty class name"),
    ("", r"classes.txt: no class names"),
])
def test_bad_classes_files(tmp_path, text, message):
    path = tmp_path / "classes.txt"
    path.write_text(text)
    with pytest.raises(BadInputError, match=message):
        read_classes(str(path))


def test_an_unknown_or_missing_class_names_the_member():
    with pytest.raises(BadInputError, match=r"'cat/1.png' is of class 'cat', which the "
                                            r"scheme lacks"):
        label_indices(member_set(["dog", "cat"]), ["dog"])
    with pytest.raises(BadInputError, match=r"'x/0.png' has no class"):
        label_indices(member_set([""]), ["dog"])
