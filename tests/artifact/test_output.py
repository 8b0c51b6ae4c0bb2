import io
import os

import pytest

from dataset_registry import BuildError
from dataset_registry.artifact.output import Output, allocate


@pytest.fixture
def can_allocate(tmp_path) -> None:
    fd = os.open(tmp_path / "probe", os.O_WRONLY | os.O_CREAT)
    try:
        if not allocate(fd, 4096):
            pytest.skip("this filesystem cannot fallocate")
    finally:
        os.close(fd)


def test_reserve_allocates_the_whole_file_before_tasks_write(tmp_path, can_allocate):
    out = Output(str(tmp_path), "finish")
    out.reserve("train.rec", 3 << 20)
    st = os.stat(tmp_path / "train.rec")
    assert st.st_size == 3 << 20
    assert st.st_blocks * 512 >= 3 << 20  # blocks allocated, not a sparse file
    out.write_at("train.rec", [b"b" * 10, b"c" * 6], 1 << 20)
    out.write_at("train.rec", [b"a" * 16], 0)
    with open(tmp_path / "train.rec", "rb") as f:
        data = f.read()
    assert data[:16] == b"a" * 16 and data[1 << 20:(1 << 20) + 16] == b"b" * 10 + b"c" * 6
    assert data[16:1 << 20] == bytes((1 << 20) - 16)  # reserved blocks read as zeros
    out.close()


def test_reserve_fails_at_once_when_the_file_cannot_fit(tmp_path, can_allocate):
    out = Output(str(tmp_path), "finish")
    with pytest.raises(BuildError, match=r"train\.rec: cannot reserve 1,125,899,906,842,624 "
                                         r"bytes \((File too large|No space left on device)\)"):
        out.reserve("train.rec", 1 << 50)
    out.close()


def test_allocate_of_nothing_is_a_no_op(tmp_path):
    fd = os.open(tmp_path / "empty", os.O_WRONLY | os.O_CREAT)
    try:
        assert allocate(fd, 0) is False
        assert os.fstat(fd).st_size == 0
    finally:
        os.close(fd)


class _Recorded(io.FileIO):
    """A raw file that remembers how much each system write asked for."""

    def __init__(self, path, mode, sizes: list[int]) -> None:
        super().__init__(path, mode.replace("b", ""))
        self.sizes = sizes

    def write(self, b):  # type: ignore[override]
        self.sizes.append(memoryview(b).nbytes)
        return super().write(b)


def test_writes_reach_the_system_a_piece_at_a_time(tmp_path, monkeypatch):
    """A task's region (`write_at`) and a whole file (`write`) larger than a piece go to the
    system in calls of at most core.filewrites.PIECE bytes (big calls are what a VM with
    free page reporting makes costly), and the files hold the same bytes."""
    from dataset_registry.artifact import output
    from dataset_registry.core import filewrites
    from dataset_registry.core.filewrites import PIECE

    pwritev_sizes: list[int] = []
    real = os.pwritev

    def pwritev(fd, group, offset):
        pwritev_sizes.append(sum(memoryview(b).nbytes for b in group))
        return real(fd, group, offset)

    raw_sizes: list[int] = []
    monkeypatch.setattr(filewrites.os, "pwritev", pwritev)

    def recording_open(path, mode="r", *args, **kwargs):  # the module's open(), recorded
        if mode == "wb":
            return io.BufferedWriter(_Recorded(path, mode, raw_sizes))
        return open(path, mode, *args, **kwargs)  # (the caller closes it)

    monkeypatch.setattr(output, "open", recording_open, raising=False)
    photos = [os.urandom(90_000) for _ in range(70)]
    out = Output(str(tmp_path), "t0")
    out.write_at("shard.tar", photos, 0)
    out.write("big.bin", b"".join(photos), member="m", source="s")
    out.close()
    assert (tmp_path / "shard.tar").read_bytes() == b"".join(photos)
    assert (tmp_path / "big.bin").read_bytes() == b"".join(photos)
    assert sum(pwritev_sizes) == len(b"".join(photos)) and max(pwritev_sizes) <= PIECE
    assert sum(raw_sizes) == len(b"".join(photos)) and max(raw_sizes) <= PIECE
