"""The fast reader of a run of plain zip members gives exactly what the strict reader gives,
or gives the run up (`NotPlain`); it vouches for the runs zip writers make."""

import os
import shutil
import subprocess
import zipfile

import numpy as np
import pytest

from dataset_registry.sources import ziplocal, zippool
from dataset_registry.sources.zipdirectory import NotPlain, read_directory
from dataset_registry.sources.zipindex import _find_directory

from ..zipkit import Entry, build_zip, damaged_zips, extra, hostile_zips, python_zip

MEMBERS = {f"c{i % 3}/m{i}.jpg": os.urandom(200 + 61 * i) for i in range(40)}


def _runs(path, jobs=3):
    """The zip's runs, as the pool cuts them (a few members each)."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        cd_offset, cd_size, count = _find_directory(f, size, str(path))
        directory = read_directory(f, cd_offset, cd_size, count, str(path))
    order = directory.file_order()
    offsets = directory.offset[order]
    return [(zippool.Run.of(directory, order[a:b], offsets, b, cd_offset), cd_offset, size)
            for a, b in zippool._runs(offsets, cd_offset, jobs)]


def _compare(path, monkeypatch):
    """For each run: ("fast", n) where the fast reader vouched (and agreed with the strict
    one), ("strict", refusal or None) where it gave up."""
    outcomes = []
    for run, cd_offset, size in _runs(path):
        with monkeypatch.context() as m:
            m.setattr(zippool, "read_plain_run", _give_up)
            strict = zippool.read_run(str(path), run, cd_offset, size)
        try:
            with open(path, "rb") as f:
                fast = ziplocal.read_plain_run(f, run, size)
        except NotPlain:
            outcomes.append(("strict", strict[1] and str(strict[1])))
            continue
        assert (list(fast), None) == strict, path.name
        outcomes.append(("fast", len(fast)))
    return outcomes


def _give_up(*_):
    raise NotPlain("strict reading asked for")


@pytest.fixture(autouse=True)
def small_runs(monkeypatch):
    monkeypatch.setattr(zippool, "RUNS_PER_WORKER", 4)


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_zipfile_runs_are_read_by_the_fast_reader(tmp_path, monkeypatch, method):
    path = tmp_path / "a.zip"
    path.write_bytes(python_zip({"c0/": b"", **MEMBERS, "empty.jpg": b""}, method=method))
    outcomes = _compare(path, monkeypatch)
    assert len(outcomes) > 3 and {kind for kind, _ in outcomes} == {"fast"}
    assert sum(n for _, n in outcomes) == len(MEMBERS) + 2


def test_small_windows_and_members_larger_than_one_are_read_alike(tmp_path, monkeypatch):
    monkeypatch.setattr(ziplocal, "WINDOW", 1500)  # members over 1,500 bytes: hashed alone
    monkeypatch.setattr(ziplocal, "_HASH_PIECE", 700)
    path = tmp_path / "a.zip"
    path.write_bytes(python_zip(MEMBERS, method=zipfile.ZIP_STORED))
    assert {kind for kind, _ in _compare(path, monkeypatch)} == {"fast"}
    path.write_bytes(python_zip(MEMBERS, method=zipfile.ZIP_DEFLATED))  # too big to inflate
    assert "strict" in {kind for kind, _ in _compare(path, monkeypatch)}  # in one window


@pytest.mark.skipif(not shutil.which("zip"), reason="Info-ZIP zip is not installed")
def test_info_zip_runs_with_their_extra_fields_are_read_by_the_fast_reader(tmp_path,
                                                                           monkeypatch):
    tree = tmp_path / "pets"
    for name, data in MEMBERS.items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_bytes(data)
    path = tmp_path / "pets.zip"
    subprocess.run(["zip", "-qr", str(path), "pets"], cwd=tmp_path, check=True)
    assert b"UT" in path.read_bytes()  # (Info-ZIP's timestamp field, in every local header)
    outcomes = _compare(path, monkeypatch)
    assert {kind for kind, _ in outcomes} == {"fast"}


@pytest.mark.parametrize("case", ["descriptor", "zip64", "unicode path", "corrupt data"])
def test_each_kind_of_run_it_cannot_vouch_for_is_given_up(tmp_path, monkeypatch, case):
    path = tmp_path / "a.zip"
    if case == "descriptor":
        data = python_zip(MEMBERS, streamed=True)
    elif case == "zip64":
        data = python_zip(MEMBERS, force_zip64=True)
    elif case == "unicode path":
        data = build_zip([Entry("a.jpg", b"x" * 99,
                                local={"extra": extra(0x7075, b"\x01\0\0\0\0a.jpg")})])
    else:  # one byte of one member's data changed: its CRC no longer checks out
        data = bytearray(python_zip(MEMBERS, method=zipfile.ZIP_STORED))
        data[data.index(b"PK\x03\x04", 1000) + 80] ^= 1
        data = bytes(data)
    path.write_bytes(data)
    outcomes = _compare(path, monkeypatch)
    assert "strict" in {kind for kind, _ in outcomes}, outcomes
    if case == "corrupt data":
        assert any(refusal and "CRC-32 mismatch" in refusal for _, refusal in outcomes)


def test_every_hostile_and_damaged_zip_is_read_alike_or_given_up(tmp_path, monkeypatch):
    cases = dict(hostile_zips())
    for seed in (3, 4):
        cases.update(damaged_zips(python_zip(MEMBERS), 60, seed))
    kinds = {"fast": 0, "strict": 0, "no run": 0}
    for name, data in cases.items():
        path = tmp_path / f"{name}.zip"
        path.write_bytes(data)
        try:
            outcomes = _compare(path, monkeypatch)
        except Exception as exc:  # (the directory itself refused: no run to read)
            assert type(exc).__name__ in ("SourceError", "UnsafeMemberError"), name
            kinds["no run"] += 1
            continue
        for kind, _ in outcomes:
            kinds[kind] += 1
    assert kinds["fast"] > 20 and kinds["strict"] > 10 and kinds["no run"] > 20, kinds


def test_a_run_cut_out_of_directory_order_keeps_each_name_with_its_member(tmp_path,
                                                                           monkeypatch):
    """Members stored in another order than the directory lists them: a run's entries
    are not consecutive in the directory, and still carry their own names and paths."""
    monkeypatch.setattr(zippool, "RUNS_PER_WORKER", 1)  # (3 runs of 4 members)
    entries = [Entry(f"d/{i}.jpg", bytes([i]) * (300 + i)) for i in range(12)]
    data = build_zip(entries, cd_order=[5, 0, 7, 1, 11, 2, 9, 3, 4, 10, 6, 8])
    path = tmp_path / "a.zip"
    path.write_bytes(data)
    runs = _runs(path)
    assert any(not (np.diff(run.rows) == 1).all() for run, _, _ in runs if len(run.rows) > 1)
    assert {kind for kind, _ in _compare(path, monkeypatch)} == {"fast"}
