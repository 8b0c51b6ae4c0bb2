"""The marker as a typed value: parsed once per read, written byte for byte as before."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dataset_registry import Registry, VerifyError
from dataset_registry.artifact.marker import InputRef, Marker, parse_marker
from dataset_registry.stores import LocalStore

from ..conftest import write_manifest
from ..realkit import write_digit_tar

# Written by the code before the typed Marker (main at 5166ae5): a `sample` with two
# declared splits, and a `select` reading one of them, with a card.
OLD = Path(__file__).parent.parent / "fixtures" / "markers"
FIVE = "cba4e237c3bf16ec84af77941a049320"
AGAIN = "86bc600b2ef50a3e1c8e5a3e360ee002"

# the digits as a `files` source and a seeded 20-image sample split in two, a and b
FIVE_MANIFEST = """\
sources:
  - {name: digits, layout: files}
datasets:
  - {name: five, recipe: sample, inputs: {images: digits},
     params: {split: train, n: 20, splits: {a: 0.5, b: 0.5}, seed: 1}}
"""


def test_a_marker_written_before_the_typed_marker_parses_and_writes_back_identically():
    data = (OLD / "again.json").read_bytes()
    marker = parse_marker(data, "again.json", AGAIN)
    assert (marker.key, marker.name, marker.recipe, marker.version) == \
        (AGAIN, "again", "select", 1)
    assert (marker.files, marker.bytes, marker.skipped) == (3, 352, 0)
    assert marker.inputs == {"images": InputRef("dataset", "five", FIVE)}
    assert marker.card == {"license": "x"} and marker.splits is None
    assert marker.built["executor"] == "LocalExecutor"
    assert marker.to_json().encode() == data
    five = parse_marker((OLD / "five.json").read_bytes(), "five.json", FIVE)
    assert five.splits == ("a", "b") and five.sources[0]["name"] == "digits"
    assert five.to_json().encode() == (OLD / "five.json").read_bytes()


def test_a_build_writes_the_same_document_as_before(tmp_path):
    """Rebuilt now from the same inputs: the same keys, and the marker's bytes are the old
    ones but for the build's own record (when, how long, where) and the params a recipe
    gained since, recorded at their defaults (`added_later`: not in the key)."""
    from dataset_registry.recipes import RECIPES

    tar = write_digit_tar(tmp_path / "digits.tar")
    write_manifest(tmp_path, "\n" + FIVE_MANIFEST + """\
  - {name: again, recipe: select, inputs: {images: five}, params: {split: "a", first: 3},
     license: "x"}
""")
    reg = Registry.open(str(tmp_path))
    reg.set_source("digits", str(tar))
    built = reg.resolve("again")
    assert built.key == AGAIN and reg.key("five") == FIVE
    for name in ("five", "again"):
        new = json.loads((Path(reg.built(name).path) / "_registry.json").read_text())
        old = json.loads((OLD / f"{name}.json").read_text())
        assert new.pop("built").keys() == old.pop("built").keys()
        params = RECIPES[new["recipe"]].Params
        gained = {k: v for k, v in new["params"].items() if k not in old["params"]}
        assert gained == {k: params.model_fields[k].get_default() for k in gained}
        assert set(gained) <= params.added_later
        new["params"] = {k: v for k, v in new["params"].items() if k not in gained}
        assert new == old
    assert isinstance(built.marker, Marker) and built.digest == built.marker.digest


def test_the_derivation_of_a_dataset_is_its_key(tmp_path):
    from dataset_registry.core.keys import derivation_key

    tar = write_digit_tar(tmp_path / "digits.tar")
    write_manifest(tmp_path, """
sources:
  - {name: digits, layout: files}
datasets:
  - {name: three, recipe: select, inputs: {images: digits}, params: {split: train, first: 3}}
""")
    reg = Registry.open(str(tmp_path))
    reg.set_source("digits", str(tar))
    d = reg.resolver.derivation("three")
    assert (d.recipe, d.version, dict(d.inputs)) == ("select", 1, {"images": reg.key("digits")})
    assert d.key == reg.key("three") == derivation_key(d.recipe, d.version, d.params, d.inputs)
    marker = reg.resolve("three").marker
    assert marker.inputs["images"].key == d.inputs["images"]


@pytest.mark.parametrize(("doc", "why"), [
    ({"splits": "train"}, "the marker's splits 'train' are not a list of split names"),
    ({"splits": ["a/b"]}, "the marker's splits ['a/b'] are not a list of split names"),
    ({"inputs": {"images": "five"}}, "the marker's build record is damaged"),
    ({"files": True}, "the marker lacks 'files' (or it is not an integer)"),
    ({"version": "x"}, "the marker's 'version' is 'x', not an integer"),
    ({"sources": "sources"}, "the marker's 'sources' is 'sources', not a list"),
    ({"params": [1]}, "the marker's 'params' is [1], not an object"),
])
def test_a_damaged_field_is_a_verify_error_naming_the_marker(tmp_path, doc, why):
    base = json.loads((OLD / "five.json").read_text())
    data = json.dumps({**base, **doc}).encode()
    with pytest.raises(VerifyError) as err:
        parse_marker(data, "store/ab/five/_registry.json", FIVE)
    assert str(err.value).startswith(f"store/ab/five/_registry.json: {why}")


def test_a_build_reads_each_marker_once_after_publishing_none(tmp_path, monkeypatch):
    """Resolving reads a missing marker twice (before and under the build lock) and a
    built one once; the marker a build publishes, and its inputs', are never read back."""
    tar = write_digit_tar(tmp_path / "digits.tar")
    write_manifest(tmp_path, """
sources:
  - {name: digits, layout: files}
datasets:
  - {name: five, recipe: select, inputs: {images: digits}, params: {split: train, first: 5}}
  - {name: three, recipe: select, inputs: {images: five}, params: {split: "*", first: 3}}
""")
    reg = Registry.open(str(tmp_path))
    reg.set_source("digits", str(tar))
    reads: list[str] = []
    real = LocalStore.marker
    monkeypatch.setattr(LocalStore, "marker",
                        lambda self, key: (reads.append(key), real(self, key))[1])
    five, three = reg.key("five"), reg.key("three")
    reg.resolve("five")
    assert reads == [five, five]  # missing, missing under the lock; then built: no re-read
    reads.clear()
    reg.resolve("three")
    assert sorted(reads) == sorted([five, three, three])  # its built input once
    reads.clear()
    reg.resolve("three")
    assert reads == [five, three]


def test_output_and_the_marker_import_nothing_of_the_stores():
    """`output` and `stores.base` used to import each other; `marker` holds what both need."""
    import ast
    import importlib

    for module in ("dataset_registry.artifact.output", "dataset_registry.artifact.marker"):
        path = importlib.import_module(module).__file__
        tree = ast.parse(Path(path).read_text())
        imported = {node.module or "" for node in ast.walk(tree)
                    if isinstance(node, ast.ImportFrom)}
        imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                     for alias in node.names}
        assert not [m for m in imported if "stores" in m], module
        if module.endswith("marker"):
            assert not [m for m in imported if m.lstrip(".").startswith("output")]


def test_a_marker_with_damaged_splits_is_reported_by_verify_and_repaired(tmp_path):
    """Checked when the marker is read (it used to be only when another build read it)."""
    from ..conftest import run_cli

    write_digit_tar(tmp_path / "digits.tar")
    write_manifest(tmp_path, "\n" + FIVE_MANIFEST + """\
  - {name: three, recipe: select, inputs: {images: five}, params: {split: "a", first: 3}}
""")
    assert run_cli("source", "set", "digits", "digits.tar", cwd=tmp_path).returncode == 0
    folder = Path(run_cli("resolve", "five", cwd=tmp_path).stdout.strip())
    marker = folder / "_registry.json"
    folder.chmod(0o755)
    marker.chmod(0o644)
    doc = json.loads(marker.read_text())
    marker.write_text(json.dumps({**doc, "splits": "a"}))
    why = f"{marker}: the marker's splits 'a' are not a list of split names"
    out = run_cli("resolve", "three", cwd=tmp_path)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert f"registry: error: {why}\nfive (key {FIVE}) is damaged; repair it with: registry " \
           "resolve --repair three" in out.stderr
    verify = run_cli("verify", "five", cwd=tmp_path)
    assert verify.returncode == 1 and f"five: {why}" in verify.stderr
    assert run_cli("resolve", "--repair", "five", cwd=tmp_path).returncode == 0
    assert run_cli("resolve", "three", cwd=tmp_path).stdout.strip().endswith(AGAIN)
    assert json.loads(marker.read_text())["splits"] == ["a", "b"]
