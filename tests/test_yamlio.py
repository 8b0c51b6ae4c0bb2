import pytest

from dataset_registry.errors import ManifestError
from dataset_registry.yamlio import load_yaml


def test_lines_are_recorded_per_path():
    data, lines = load_yaml("a:\n  b: 1\n  c:\n    - x\n    - y\n", "m.yaml")
    assert data == {"a": {"b": 1, "c": ["x", "y"]}}
    assert lines.where(("a", "c", 1)) == "m.yaml:5"
    assert lines.where(("a", "missing")) == "m.yaml:1"


def test_duplicate_keys_are_errors_with_their_line():
    with pytest.raises(ManifestError, match=r"^m.yaml:3: duplicate key 'a'$"):
        load_yaml("a: 1\nb: 2\na: 3\n", "m.yaml")


def test_syntax_errors_name_file_and_line():
    with pytest.raises(ManifestError, match=r"^m.yaml:3: invalid YAML"):
        load_yaml("a:\n  b: 1\n c: 2\n", "m.yaml")


def test_merge_keys_and_anchors_work():
    data, _ = load_yaml("x: &v {p: 1}\ny:\n  <<: *v\n  q: 2\n", "m.yaml")
    assert data["y"] == {"p": 1, "q": 2}


def test_unsafe_tags_are_refused():
    with pytest.raises(ManifestError, match=r"m\.yaml:1: unsupported YAML tag"):
        load_yaml("a: !!python/object/apply:os.system ['echo hi']\n", "m.yaml")
