"""core.atomic: a write replaces the file whole or not at all, from a temporary file in
the target's own folder that never outlives the write."""

from __future__ import annotations

import os

import numpy as np
import pytest

from dataset_registry.core import atomic
from dataset_registry.core.atomic import atomic_path, write_atomic


def test_a_write_replaces_the_file_and_leaves_nothing_else(tmp_path):
    target = tmp_path / "state.json"
    target.write_text("old")
    write_atomic(str(target), '{"new": 1}\n')
    assert target.read_text() == '{"new": 1}\n'
    write_atomic(str(target), b"\x00bytes")
    assert target.read_bytes() == b"\x00bytes"
    assert os.listdir(tmp_path) == ["state.json"]


def test_a_missing_file_is_created_with_a_plain_files_mode(tmp_path):
    plain = tmp_path / "plain"
    plain.write_text("x")
    write_atomic(str(tmp_path / "new"), "x")
    # not mkstemp's 0600: what open() gives, so a teammate on a shared disk can read it
    assert (tmp_path / "new").stat().st_mode == plain.stat().st_mode


def test_the_temporary_file_is_beside_the_target(tmp_path):
    target = tmp_path / "index.npz"
    with atomic_path(str(target)) as tmp:
        assert os.path.dirname(tmp) == str(tmp_path)  # same folder: the rename is atomic
        assert os.stat(tmp).st_dev == os.stat(tmp_path).st_dev
        assert not target.exists()  # nothing at the target until the block ends
        with open(tmp, "wb") as f:
            np.savez(f, values=np.arange(3))
    with np.load(target) as z:
        assert z["values"].tolist() == [0, 1, 2]
    assert os.listdir(tmp_path) == ["index.npz"]


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_a_failure_mid_write_keeps_the_old_file_and_no_temporary_one(tmp_path, error):
    target = tmp_path / "records.json"
    target.write_text("old")
    with pytest.raises(type(error)), atomic_path(str(target)) as tmp:
        with open(tmp, "w") as f:
            f.write("half of the new")
        raise error
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["records.json"]


def test_a_failed_rename_keeps_what_is_there_and_no_temporary_file(tmp_path):
    taken = tmp_path / "taken"
    (taken / "inside").mkdir(parents=True)  # a folder in the way: os.replace refuses
    with pytest.raises(OSError):
        write_atomic(str(taken), "data")
    assert taken.is_dir() and os.listdir(taken) == ["inside"]
    assert os.listdir(tmp_path) == ["taken"]


def test_a_folder_that_does_not_exist_is_an_error_not_made(tmp_path):
    with pytest.raises(FileNotFoundError):
        write_atomic(str(tmp_path / "missing" / "file"), "data")
    assert os.listdir(tmp_path) == []


def test_fsync_only_when_asked(tmp_path, monkeypatch):
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    write_atomic(str(tmp_path / "cache"), "x")
    with atomic_path(str(tmp_path / "cache")) as tmp, open(tmp, "w") as f:
        f.write("y")
    assert synced == []  # hot paths stay without it
    write_atomic(str(tmp_path / "marker"), "x", fsync=True)
    with atomic_path(str(tmp_path / "tar"), fsync=True) as tmp, open(tmp, "w") as f:
        f.write("y")
    assert len(synced) == 2
    assert (tmp_path / "marker").read_text() == "x" and (tmp_path / "tar").read_text() == "y"
