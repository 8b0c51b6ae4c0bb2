import numpy as np
import pytest

from dataset_registry import BadInputError
from dataset_registry.sources.classes import default_classes, label_indices, read_classes
from dataset_registry.sources.members import MemberRef, MemberSet


def member_set(labels, values=None):
    refs = [MemberRef(f"{label or 'x'}/{i}.png", "", 0, 1, f"o{i}", "fp", label)
            for i, label in enumerate(labels)]
    return MemberSet.from_refs("train", "source s", refs, "/nowhere",
                               values=None if values is None else np.array(values))


def test_sorted_scheme_and_indices():
    s = member_set(["dog", "cat", "dog", "ant"])
    classes = default_classes(s)
    assert classes == ["ant", "cat", "dog"]
    names = [r.name for r in s]
    assert dict(zip(names, label_indices(s, classes).tolist(), strict=True)) == \
        {"ant/3.png": 0, "cat/1.png": 1, "dog/0.png": 2, "dog/2.png": 2}


def test_numbered_class_names_sort_as_text_unless_a_table_gave_whole_numbers():
    """Folders "2" and "10" sort as torchvision sorts them ("10" first); a table's whole
    numbers 2 and 10 keep their value (Hugging Face's imagefolder does)."""
    assert default_classes(member_set(["2", "10", "2"])) == ["10", "2"]
    numbers = member_set(["2", "10", "2"], values=[2, 10, 2])
    classes = default_classes(numbers)
    assert classes == [str(i) for i in range(11)]
    names = [r.name for r in numbers]  # (sorted by name)
    assert dict(zip(names, label_indices(numbers, classes).tolist(), strict=True)) == \
        {"2/0.png": 2, "10/1.png": 10, "2/2.png": 2}
    mixed = member_set(["2", "cat"], values=[2, -1])  # one label is a name: sorted names
    assert default_classes(mixed) == ["2", "cat"]


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
