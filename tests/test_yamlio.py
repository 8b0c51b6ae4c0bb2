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


BOMB_CHILD = """
import json, resource, sys, time
from dataset_registry.errors import ManifestError
from dataset_registry.yamlio import load_yaml

text = sys.stdin.read()
with open("/proc/self/statm") as f:  # a safety net: a regression fails, not the machine
    mapped = int(f.read().split()[0]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_AS, (mapped + (1 << 30), resource.RLIM_INFINITY))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
try:
    load_yaml(text, "m.yaml")
    error = None
except ManifestError as exc:
    error = str(exc)
print(json.dumps({"seconds": time.perf_counter() - started, "error": error,
                  "grew_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before}))
"""


def test_alias_bomb_is_refused_fast_in_bounded_memory():
    """Measured in a fresh process: this process's peak is whatever an earlier test reached.
    Refusing at the budget (100,000 values) grows the peak by about 20 MiB; a budget ten
    times larger would grow it by about 190 MiB, no budget at all exhausts the memory."""
    import json
    import subprocess
    import sys

    text = _laughs(9)  # 9**9 = 387 million values if expanded
    assert len(text) < 500
    child = subprocess.run([sys.executable, "-c", BOMB_CHILD], input=text, text=True,
                           capture_output=True, timeout=120)
    assert child.returncode == 0, child.stderr[-2000:]
    measured = json.loads(child.stdout)
    assert measured["error"] is not None, "the bomb was not refused"
    assert re.fullmatch(r"m\.yaml:\d+: [a-z]\[0\]: alias \*[a-z] expands the document past "
                        r"[\d,]+ values .*", measured["error"])
    assert measured["grew_kib"] < 64 * 1024, measured
    assert measured["seconds"] < 1.5, measured


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
