import os
import stat
from pathlib import Path

import pytest

from dataset_registry.stores import LocalStore
from dataset_registry.testing.stores import KEY, StoreSuite, build, overwrite, run_fake_task


def write_bits(folder: Path) -> dict[str, int]:
    """Every path under `folder` (itself too) with write bits set: {relative path: bits}."""
    found = {}
    for path in [folder, *folder.rglob("*")]:
        bits = stat.S_IMODE(path.lstat().st_mode) & 0o222
        if bits:
            found[str(path.relative_to(folder))] = bits
    return found


class TestLocalStore(StoreSuite):
    @pytest.fixture
    def store(self, tmp_path):
        return LocalStore(str(tmp_path / "store"))

    def test_a_committed_artifact_is_read_only(self, store) -> None:
        build(store)
        folder = Path(store.local_path(KEY))
        assert (folder / "a" / "x.bin").exists()
        assert write_bits(folder) == {}
        assert os.access(folder.parent, os.W_OK)  # the <key[:2]> folder stays writable

    def test_delete_and_gc_restore_write_bits_before_removing(self, store) -> None:
        build(store)
        folder = Path(store.local_path(KEY))
        store.delete(KEY)
        assert not folder.exists()
        staging = store.begin(KEY)  # a crashed build that got as far as sealing its files
        run_fake_task(store, staging, "000000", {"x": b"1"})
        Path(staging.path, "x").chmod(0o444)
        Path(staging.path).chmod(0o555)
        for path in store.leftovers():
            store.remove_leftover(path)
        assert not os.path.exists(staging.path) and store.leftovers() == []
        assert os.listdir(Path(store.root, ".staging")) == []

    def test_replace_leaves_a_read_only_artifact_and_nothing_aside(self, store) -> None:
        from dataset_registry.output import finalize

        build(store)
        overwrite(store, "b.txt", b"HELLO")
        staging = store.begin(KEY)
        run_fake_task(store, staging, "000000", {"b.txt": b"hello"})
        store.replace(staging, {"key": KEY, "name": "t", **finalize(staging.path)})
        folder = Path(store.local_path(KEY))
        assert (folder / "b.txt").read_bytes() == b"hello" and write_bits(folder) == {}
        assert os.listdir(Path(store.root, ".staging")) == []
