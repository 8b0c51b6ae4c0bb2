import re

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


def _laughs(levels: int) -> str:
    """A "billion laughs": each level a list of nine aliases of the one before (9**levels)."""
    out = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        name, prev = chr(ord("a") + i), chr(ord("a") + i - 1)
        out.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    return "\n".join(out) + "\nbomb: *" + chr(ord("a") + levels - 1) + "\n"


def test_alias_bomb_is_refused_fast_in_bounded_memory():
    import resource
    import time

    text = _laughs(9)  # 9**9 = 387 million values if expanded
    assert len(text) < 500
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    with pytest.raises(ManifestError) as info:
        load_yaml(text, "m.yaml")
    assert time.perf_counter() - started < 1.5
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024  # KiB
    assert re.fullmatch(r"m\.yaml:\d+: [a-z]\[0\]: alias \*[a-z] expands the document past "
                        r"[\d,]+ values .*", str(info.value))


def test_merge_key_bomb_is_refused():
    text = "a: &a {x: 1, y: 2, z: 3}\n" + "".join(
        f"l{i}: &l{i} {{<<: [{', '.join([f'*{prev}'] * 8)}]}}\n"
        for i, prev in enumerate(["a", *(f"l{k}" for k in range(11))]))
    with pytest.raises(ManifestError, match=r"^m\.yaml:\d+: .*alias \*\w+ expands the document"):
        load_yaml(text, "m.yaml")


def test_reused_anchors_within_the_budget_still_expand():
    data, lines = load_yaml(_laughs(3), "m.yaml")  # 729 values
    assert data["bomb"][8][8] == ["lol"] * 9
    assert lines.where(("bomb",)) == "m.yaml:4"


def test_merge_keys_own_keys_override_and_first_merged_wins():
    text = ("x: &x {p: 1, q: 1}\nw: &w {q: 2, r: 2}\n"
            "y:\n  <<: [*x, *w]\n  p: 3\n")
    data, lines = load_yaml(text, "m.yaml")
    assert data["y"] == {"p": 3, "q": 1, "r": 2}
    assert lines.where(("y", "p")) == "m.yaml:5"


def test_merging_a_scalar_is_an_error():
    with pytest.raises(ManifestError, match=r"^m\.yaml:2: `<<` merges mappings only$"):
        load_yaml("x: &x 1\ny: {<<: *x}\n", "m.yaml")
