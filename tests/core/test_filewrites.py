"""core/filewrites: big buffers written a piece of at most PIECE bytes a call, the same
bytes as one call."""

import io
import os
import random

import numpy as np
import pytest

from dataset_registry.core import filewrites
from dataset_registry.core.filewrites import PIECE, pieces, pwrite_all, write_all


def buffers_of(sizes: list[int], seed: int = 0) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(n) for n in sizes]


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """(bytes, buffers) of each os.pwritev call, the real call made."""
    seen: list[tuple[int, int]] = []
    real = os.pwritev

    def pwritev(fd: int, group: list, offset: int) -> int:
        seen.append((sum(memoryview(b).nbytes for b in group), len(group)))
        return real(fd, group, offset)

    monkeypatch.setattr(filewrites.os, "pwritev", pwritev)
    return seen


@pytest.mark.parametrize("sizes", [
    [90_000] * 70,  # a task's photos: 6.3 MB
    [512, 3, 509, 512, 90_000, 0, 12] * 200,  # a WebDataset region's headers and paddings
    [PIECE * 3 + 17],  # one buffer of several pieces
    [PIECE - 1, 2, PIECE, PIECE + 1, 1],  # around the boundary
    [1] * 1500,  # more buffers than a call takes
    [0, 0],
    [],
])
def test_pwrite_all_writes_the_buffers_back_to_back_a_piece_a_call(tmp_path, calls, sizes):
    data = buffers_of(sizes)
    path = tmp_path / "out"
    path.write_bytes(b"before")
    fd = os.open(path, os.O_WRONLY)
    try:
        end = pwrite_all(fd, data, 6)
    finally:
        os.close(fd)
    assert path.read_bytes() == b"before" + b"".join(data)
    assert end == 6 + sum(sizes)
    assert sum(n for n, _ in calls) == sum(sizes)
    assert all(n <= PIECE and k <= 512 for n, k in calls), calls
    # every call but the last is a whole piece or a call's worth of buffers
    assert all(n == PIECE or k == 512 for n, k in calls[:-1]), calls


def test_a_short_write_is_finished(tmp_path, monkeypatch):
    """pwritev may write less than asked (a signal, a full disk filling): the rest follows."""
    real = os.pwritev

    def short(fd: int, group: list, offset: int) -> int:
        whole = b"".join(group)
        return real(fd, [whole[:len(whole) // 3]], offset)

    monkeypatch.setattr(filewrites.os, "pwritev", short)
    data = buffers_of([90_000] * 10)
    path = tmp_path / "out"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        pwrite_all(fd, data, 0)
    finally:
        os.close(fd)
    assert path.read_bytes() == b"".join(data)


def test_pieces_split_only_where_a_group_ends():
    rng = random.Random(7)
    sizes = [rng.choice([0, 1, 5, 40, 99, 100, 101, 350]) for _ in range(400)]
    data = buffers_of(sizes, seed=3)
    groups = list(pieces(data, size=100))
    assert b"".join(b"".join(g) for g, _ in groups) == b"".join(data)
    assert all(n == sum(len(b) for b in g) for g, n in groups)
    assert all(n == 100 for _, n in groups[:-1])
    # a buffer within one group is passed as it is, not copied or viewed
    whole = {id(b) for g, _ in groups for b in g}
    assert sum(id(b) in whole for b in data if 0 < len(b) <= 40) > 0


def test_numpy_arrays_count_their_bytes(tmp_path, calls):
    array = np.arange(PIECE, dtype=np.int64)  # 8 pieces' worth
    path = tmp_path / "out"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        pwrite_all(fd, [array, b"x"], 0)
    finally:
        os.close(fd)
    assert path.read_bytes() == array.tobytes() + b"x"
    assert [n for n, _ in calls] == [PIECE] * 8 + [1]


class Recorded(io.FileIO):
    """A raw file that remembers how much each system write asked for."""

    sizes: list[int]

    def write(self, b):  # type: ignore[override]
        self.sizes.append(memoryview(b).nbytes)
        return super().write(b)


def test_write_all_hands_the_system_a_piece_at_a_time(tmp_path):
    data = buffers_of([PIECE * 5 + 123])[0]
    raw = Recorded(tmp_path / "out", "w")
    raw.sizes = []
    with io.BufferedWriter(raw) as f:
        write_all(f, data)
    assert (tmp_path / "out").read_bytes() == data
    assert max(raw.sizes) <= PIECE and sum(raw.sizes) == len(data)


def test_a_file_that_takes_no_more_bytes_is_an_error_not_a_loop(tmp_path, monkeypatch):
    monkeypatch.setattr(filewrites.os, "pwritev", lambda fd, group, offset: 1)
    monkeypatch.setattr(filewrites.os, "pwrite", lambda fd, data, offset: 0)
    fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT)
    try:
        with pytest.raises(OSError, match="took no more bytes"):
            pwrite_all(fd, [b"abc"], 0)
    finally:
        os.close(fd)


def test_any_mix_of_buffers_writes_their_bytes_in_order(tmp_path, calls):
    """Random buffers of every kind a caller hands over (bytes, bytearray, views of slices,
    numpy arrays of wider types, empty arrays of two dimensions): one plain join's bytes."""
    rng = random.Random(11)
    for case in range(40):
        data: list = []
        for _ in range(rng.choice([0, 1, 3, 600])):
            n = rng.choice([0, 1, 7, 512, 90_000, PIECE - 3, PIECE, PIECE + 5, 3 * PIECE])
            raw = rng.randbytes(n)
            kind = rng.randrange(5)
            data.append(raw if kind == 0 else bytearray(raw) if kind == 1 else
                        memoryview(raw)[n // 3:] if kind == 2 else
                        np.frombuffer(raw[:n - n % 4], np.uint32) if kind == 3 else
                        np.zeros((0, 3), np.uint8))
        expected = b"".join(memoryview(b).tobytes() for b in data)
        path = tmp_path / f"out{case}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT)
        try:
            assert pwrite_all(fd, data, 0) == len(expected)
        finally:
            os.close(fd)
        assert path.read_bytes() == expected
        with open(tmp_path / f"whole{case}", "wb") as f:
            for b in data:
                write_all(f, b)
        assert (tmp_path / f"whole{case}").read_bytes() == expected
    assert calls and all(n <= PIECE and k <= 512 for n, k in calls)
