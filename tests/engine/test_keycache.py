"""The key cache covers the resolved closure only: an unrelated source is never read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dataset_registry import Registry, cli
from dataset_registry.engine import keycache
from dataset_registry.engine import keys as source_keys

from ..conftest import write_manifest
from ..realkit import write_digit_tar

MANIFEST = """
sources:
  - {name: val, layout: files}
  - {name: train, layout: files}
datasets:
  - {name: val-five, recipe: select, inputs: {images: val}, params: {split: train, first: 5}}
  - {name: val-three, recipe: select, inputs: {images: val}, params: {split: train, first: 3}}
  - {name: train-five, recipe: select, inputs: {images: train}, params: {split: train, first: 5}}
"""


@pytest.fixture
def project(tmp_path, monkeypatch, capsys) -> Path:
    """Two tar sources, val and train, each set; every dataset resolved once."""
    write_digit_tar(tmp_path / "val.tar")
    write_digit_tar(tmp_path / "train.tar")
    write_manifest(tmp_path, MANIFEST)
    monkeypatch.chdir(tmp_path)
    for name in ("val", "train"):
        assert cli.main(["source", "set", name, f"{name}.tar"]) == 0
    assert cli.main(["resolve", "val-five", "train-five"]) == 0
    capsys.readouterr()
    return tmp_path


def checked(monkeypatch) -> list[str]:
    """The names of the sources fingerprinted (stat-checked, and read if changed) from now."""
    seen: list[str] = []
    real = source_keys.check_source
    monkeypatch.setattr(source_keys, "check_source",
                        lambda node, *a, **k: (seen.append(node.name), real(node, *a, **k))[1])
    return seen


def source_cache(root: Path) -> dict[str, tuple[int, bytes]]:
    folder = root / ".registry-state" / "cache"
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.glob("*.json")}


def test_resolving_a_val_only_dataset_never_reads_a_touched_train_tar(project, monkeypatch,
                                                                      capsys):
    before = source_cache(project)
    key = keycache.lookup(".registry-state", "manifests", ["val-five"])["val-five"]
    stat = os.stat(project / "train.tar")
    os.utime(project / "train.tar", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touched
    os.chmod(project / "train.tar", 0)  # and unreadable: reading it could not go unnoticed
    manifest = project / "manifests" / "test.yaml"
    train_key = Registry.open(str(project)).sql(
        "SELECT key FROM nodes WHERE name = 'train-five'").rows[0][0]
    manifest.write_text(manifest.read_text() + "# a comment: the catalog refreshes its nodes\n")
    try:
        seen = checked(monkeypatch)
        assert cli.main(["resolve", "val-three"]) == 0  # not built yet: the full path
        assert cli.main(["resolve", "--dry-run", "val-five"]) == 0
        assert cli.main(["path", "val-five"]) == 0
    finally:
        os.chmod(project / "train.tar", 0o644)
    out = capsys.readouterr()
    assert "train" not in seen and set(seen) == {"val"}
    assert source_cache(project) == before  # the train tar's fingerprint: not recomputed
    assert "warning" not in out.err and out.err == ""
    cached = keycache.lookup(".registry-state", "manifests", ["val-five", "val-three"])
    assert cached is not None and cached["val-five"] == key
    assert out.out.splitlines()[-1].endswith(key)  # `path` gives the same artifact
    # the nodes were re-indexed after the edit, from what was known: train-five's key is
    # the one its source last had, and nothing read the tar to say so
    rows = dict(Registry.open(str(project)).sql("SELECT name, key FROM nodes").rows)
    assert rows["train-five"] == train_key and rows["val-five"] == key


def test_an_entry_sharing_a_changed_source_is_dropped_not_kept_stale(project, monkeypatch):
    """val-five and val-three read one tar: once it changes, saving val-three's new key must
    not leave val-five's old key looking current (the stat they share is the new one)."""
    assert cli.main(["resolve", "val-three"]) == 0
    assert keycache.lookup(".registry-state", "manifests", ["val-five", "val-three"])
    write_digit_tar(project / "val.tar", table="labels.csv")  # other bytes: other keys
    assert cli.main(["resolve", "val-three"]) == 0
    old = keycache.lookup(".registry-state", "manifests", ["val-five"])
    current = Registry.open(str(project)).key("val-five")
    assert old is None or old == {"val-five": current}  # dropped (or current): never stale
    assert keycache.lookup(".registry-state", "manifests", ["train-five"]) is not None
