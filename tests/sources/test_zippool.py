"""A zip read on a pool gives what the serial reader gives: the same members in the same
order, or the same refusal after the same members, word for word."""

import os

import pytest

from dataset_registry.errors import SourceError
from dataset_registry.sources import nestedpool, zippool
from dataset_registry.sources.zipindex import scan_zip

from ..zipkit import damaged_zips, hostile_zips, python_zip

MEMBERS = {f"d{i % 7}/m{i}.JPEG": os.urandom(300 + 37 * i) for i in range(60)}


@pytest.fixture
def pooled(monkeypatch):
    """Every zip read on a pool of 3, in runs of a few members (however small the zip)."""
    monkeypatch.setattr(zippool, "PARALLEL_BYTES", 0)
    monkeypatch.setattr(zippool, "RUNS_PER_WORKER", 7)


def _outcome(members):
    """(members given before any refusal, the refusal's words or None)."""
    given = []
    try:
        for m in members:
            given.append(m)
    except SourceError as exc:
        return given, str(exc)
    return given, None


def test_every_hostile_and_damaged_zip_reads_on_a_pool_as_serially(tmp_path, pooled):
    cases = dict(hostile_zips())
    cases.update(damaged_zips(python_zip(MEMBERS), 60, 7))
    outcomes = {"read": 0, "refused": 0}
    for name, data in cases.items():
        path = tmp_path / f"{name}.zip"
        path.write_bytes(data)
        serial = _outcome(scan_zip(str(path)))
        pooled_ = _outcome(zippool.scan_zip_local(str(path), jobs=3))
        assert pooled_ == serial, name
        outcomes["refused" if serial[1] else "read"] += 1
    assert outcomes["read"] > 15 and outcomes["refused"] > 40, outcomes


def test_a_big_zip_is_cut_into_runs_read_by_several_workers(tmp_path, pooled):
    path = tmp_path / "photos.zip"
    path.write_bytes(python_zip(MEMBERS))
    found = list(zippool.scan_zip_local(str(path), jobs=3))
    assert found == list(scan_zip(str(path))) and len(found) == 60
    with open(path, "rb") as f:
        from dataset_registry.sources.zipindex import _find_directory, _read_directory

        cd_offset, cd_size, count = _find_directory(f, path.stat().st_size, str(path))
        order = sorted(_read_directory(f, cd_offset, cd_size, count, str(path)),
                       key=lambda e: e.offset)
    runs = list(zippool._runs(order, cd_offset, 3))
    assert len(runs) > 3 and [e for run, _ in runs for e in run] == order


def test_a_pool_that_cannot_start_reads_serially(tmp_path, pooled, monkeypatch):
    path = tmp_path / "photos.zip"
    path.write_bytes(python_zip(MEMBERS))

    def broken(*args, **kwargs):
        raise nestedpool.BrokenProcessPool("no workers")
        yield  # (a generator, like the pool's)

    monkeypatch.setattr(zippool, "_scan_parallel", broken)
    assert list(zippool.scan_zip_local(str(path), jobs=3)) == list(scan_zip(str(path)))
