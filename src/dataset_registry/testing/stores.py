"""The store conformance suite: a backend's test module subclasses `StoreSuite` and
provides the `store` fixture (fsspec's abstract-test style), e.g. for an outside backend:

    from dataset_registry.testing.stores import StoreSuite

    class TestMyStore(StoreSuite):
        @pytest.fixture
        def store(self, tmp_path):
            return MyStore(f"my://bucket/{tmp_path.name}")

It drives the commit protocol the way a build does: tasks write through the
store's `Drop` (shipped wherever the backend sends them), the coordinator
gathers, finalizes and commits. Bytes are compared by reading them back. The
helpers (`build`, `run_fake_task`, `finalized`, `overwrite`, `KEY`) serve a backend's own
tests.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dataset_registry.artifact.finalize import finalize
from dataset_registry.artifact.marker import Marker
from dataset_registry.artifact.output import Output
from dataset_registry.errors import BuildError, VerifyError
from dataset_registry.stores import MARKER, Staging, Store

KEY = "ab" + "0" * 30
OTHER = "cd" + "1" * 30


def run_fake_task(store: Store, staging, part: str, files: dict[str, bytes],
                  ranges: dict[str, tuple[int, bytes]] | None = None) -> None:
    """What `run_task` does around a recipe: write through the drop, then ship."""
    drop = store.drop(staging, store.remote)
    folder = drop.folder()
    out = Output(folder, part, ranged=drop.ranged)
    for path, data in files.items():
        out.write(path, data, label=1, member=f"m/{path}", source="src")
    for path, (offset, data) in (ranges or {}).items():
        out.write_at(path, [data[:3], data[3:]], offset)
    with open(out.scratch(f"{part}.note"), "wb") as f:
        f.write(b"only finish reads this")
    out.close()
    drop.ship(folder)


def build(store: Store, key: str = KEY, files: dict[str, bytes] | None = None) -> dict:
    """A two-task build with one in-place file assembled from both tasks' ranges."""
    files = files or {"a/x.bin": b"x" * 100, "b.txt": b"hello"}
    staging = store.begin(key)
    items = sorted(files.items())
    run_fake_task(store, staging, "000000", dict(items[: len(items) // 2]),
                  {"packed.bin": (0, b"01234567")})
    run_fake_task(store, staging, "000001", dict(items[len(items) // 2:]),
                  {"packed.bin": (8, b"89abcdef")})
    store.gather(staging)
    for part in ("000000", "000001"):
        assert Path(staging.path, ".scratch", f"{part}.note").read_bytes() == \
            b"only finish reads this"
    out = Output(staging.path, "finish")
    out.added("packed.bin")
    out.close()
    marker = finalized(staging)
    committed = store.commit(staging, marker)
    return {"marker": marker, "committed": committed}


def finalized(staging: Staging) -> Marker:
    """`finalize` the build in `staging`: the marker a store commits it with (its digest
    and counts, and a name; no build record)."""
    facts = finalize(staging.path)
    return Marker(key=staging.key, digest=facts["digest"], files=facts["files"],
                  bytes=facts["bytes"], skipped=facts["skipped"], name="t")


def artifact_file(store: Store, rel: str, key: str = KEY) -> str:
    """Where `rel` of artifact `key` lies in the store's filesystem."""
    _, root = store.filesystem()
    return f"{root}/{key[:2]}/{key}/{rel}"


def overwrite(store: Store, rel: str, data: bytes, key: str = KEY) -> None:
    """Tamper with a committed file the way someone with write access would: a local
    artifact is read-only, so its write bit comes back first (S3 has none)."""
    fs, _ = store.filesystem()
    path = artifact_file(store, rel, key)
    if "file" in fs.protocol and os.path.exists(path):
        os.chmod(os.path.dirname(path), 0o755)
        os.chmod(path, 0o644)
    fs.pipe_file(path, data)


def forge_table(store: Store, tmp: Path, sql_replace: str, key: str = KEY) -> None:
    """Rewrite the artifact's `_files.parquet` with `SELECT * REPLACE (sql_replace)`."""
    import duckdb

    fs, _ = store.filesystem()
    before, after = tmp / "before.parquet", tmp / "after.parquet"
    before.write_bytes(fs.cat_file(artifact_file(store, "_files.parquet", key)))
    duckdb.sql(f"COPY (SELECT * REPLACE ({sql_replace}) FROM '{before}' ORDER BY path) "
               f"TO '{after}' (FORMAT parquet)")
    overwrite(store, "_files.parquet", after.read_bytes(), key)


class StoreRecordChecks:
    """Verify trusts no record: marker, file table and files are checked against each
    other (part of every backend's conformance)."""

    def test_a_changed_file_with_its_row_rewritten_fails_verify(self, store, tmp_path) -> None:
        import xxhash

        build(store)
        overwrite(store, "b.txt", b"HELLO")
        forge_table(store, tmp_path, "CASE WHEN path = 'b.txt' THEN "
                    f"'{xxhash.xxh3_128_hexdigest(b'HELLO')}' ELSE xxh3 END AS xxh3")
        problems = store.verify(KEY)
        assert len(problems) == 1, problems
        assert problems[0].startswith(f"{artifact_file(store, '_files.parquet')}: its rows (3 "
                                      "files, 121 bytes, digest ")
        assert problems[0].endswith("): the file table was changed")

    def test_a_marker_copied_from_another_artifact_fails(self, store) -> None:
        build(store)
        build(store, OTHER, {"y": b"y"})
        fs, _ = store.filesystem()
        overwrite(store, MARKER, fs.cat_file(artifact_file(store, MARKER, OTHER)))
        where = artifact_file(store, MARKER)
        expected = (f"{where}: the marker is artifact {OTHER}'s, not {KEY}'s "
                    "(copied from another artifact?)")
        with pytest.raises(VerifyError) as info:
            store.marker(KEY)
        assert str(info.value).endswith(expected)
        assert [p.endswith(expected) for p in store.verify(KEY)] == [True]
        assert store.verify(OTHER) == []  # the one it was copied from is fine

    @pytest.mark.parametrize(("data", "why"), [
        (b"", "the marker is empty"),
        (b'{"digest": "12', "the marker does not parse as JSON (Unterminated string"),
        (b"\x00\xffgarbage", "the marker does not parse as JSON ("),
        (b"[1, 2]", "the marker is not a JSON object"),
        (b'{"key": "' + KEY.encode() + b'", "files": 3}', "the marker lacks 'digest'"),
    ], ids=["empty", "truncated", "garbage", "not-an-object", "lacks-a-field"])
    def test_a_damaged_marker_is_a_verify_error_naming_it(self, store, data, why) -> None:
        build(store)
        overwrite(store, MARKER, data)
        where = artifact_file(store, MARKER)
        with pytest.raises(VerifyError) as info:
            store.marker(KEY)
        assert f"{where}: {why}" in str(info.value)
        assert list(store.committed()) == [KEY]  # still listed, so `verify` reports it
        problems = store.verify(KEY)
        assert len(problems) == 1 and f"{where}: {why}" in problems[0]

    def test_a_missing_file_table_is_reported(self, store) -> None:
        build(store)
        fs, _ = store.filesystem()
        table = artifact_file(store, "_files.parquet")
        if "file" in fs.protocol:
            os.chmod(os.path.dirname(table), 0o755)
        fs.rm_file(table)
        assert store.verify(KEY) == [f"{table}: missing"]
        with pytest.raises(VerifyError, match=r"_files\.parquet: missing"):
            store.marker(KEY)  # damaged means not served: no reader takes it as built

    @pytest.mark.parametrize("data", [b"PAR1 not really", b"", b"PAR1" * 100])
    def test_a_garbage_file_table_is_reported(self, store, data) -> None:
        build(store)
        good = store.filesystem()[0].cat_file(artifact_file(store, "_files.parquet"))
        overwrite(store, "_files.parquet", data or good[:len(good) // 2])  # or truncated
        problems = store.verify(KEY)
        assert len(problems) == 1
        assert problems[0].startswith(f"{artifact_file(store, '_files.parquet')}: unreadable "
                                      "as a file table (")
        with pytest.raises(VerifyError, match=r"_files\.parquet: unreadable as a file table"):
            store.marker(KEY)

    def test_replace_publishes_over_a_damaged_artifact(self, store) -> None:
        build(store)
        overwrite(store, "b.txt", b"HELLO")
        overwrite(store, "planted.bin", b"not part of it")
        staging = store.begin(KEY)
        run_fake_task(store, staging, "000000", {"a/x.bin": b"x" * 100, "b.txt": b"hello"})
        store.gather(staging)
        store.replace(staging, finalized(staging))
        assert store.verify(KEY) == []
        assert Path(store.local_path(KEY), "b.txt").read_bytes() == b"hello"
        assert not Path(store.local_path(KEY), "planted.bin").exists()
        assert store.leftovers() == [] and not os.path.exists(staging.path)


class StoreSuite(StoreRecordChecks):
    """Every store backend: subclass it and provide the `store` fixture."""

    @pytest.fixture
    def store(self) -> Store:
        raise NotImplementedError("each backend's test module provides `store`")

    def test_an_unbuilt_key_has_no_marker(self, store: Store) -> None:
        assert store.marker(KEY) is None
        assert list(store.committed()) == []

    def test_commit_publishes_every_file_and_the_marker(self, store: Store) -> None:
        done = build(store)
        assert done["committed"]
        assert store.marker(KEY) == done["marker"]
        assert list(store.committed()) == [KEY]
        local = Path(store.local_path(KEY))
        assert (local / "a" / "x.bin").read_bytes() == b"x" * 100
        assert (local / "b.txt").read_bytes() == b"hello"
        assert (local / "packed.bin").read_bytes() == b"0123456789abcdef"
        assert store.verify(KEY) == []

    def test_scratch_parts_and_ranges_are_never_published(self, store: Store) -> None:
        build(store)
        fs, root = store.filesystem()
        found = {p[len(root):].strip("/") for p in fs.find(root)}
        mine = sorted(p.split("/", 2)[2] for p in found if p.startswith(f"ab/{KEY}/"))
        assert mine == ["_files.parquet", MARKER, "a/x.bin", "b.txt", "packed.bin"]
        assert not any(".staging" in p for p in found)

    def test_file_table_lists_files_with_their_provenance(self, store: Store) -> None:
        import duckdb

        build(store)
        table = os.path.join(store.tables(KEY), "_files.parquet")
        rows = duckdb.sql(f"SELECT path, size, member FROM '{table}' ORDER BY path").fetchall()
        assert rows == [("a/x.bin", 100, "m/a/x.bin"), ("b.txt", 5, "m/b.txt"),
                        ("packed.bin", 16, None)]

    def test_a_second_builder_of_the_same_key_finds_it_committed(self, store: Store) -> None:
        assert build(store)["committed"]
        again = build(store)
        assert not again["committed"]
        assert list(store.committed()) == [KEY]
        assert store.verify(KEY) == []

    def test_abort_leaves_no_marker(self, store: Store) -> None:
        staging = store.begin(KEY)
        run_fake_task(store, staging, "000000", {"x": b"1"})
        store.abort(staging)
        assert store.marker(KEY) is None
        assert list(store.committed()) == []
        assert not os.path.exists(staging.path)

    @pytest.mark.parametrize("writer", ["task", "finish"])
    def test_a_link_leading_out_of_a_build_is_never_published(self, store: Store, tmp_path,
                                                              writer) -> None:
        """A symbolic link a task or `finish` left that leads out of the build: refused
        before anything is published (a rename would serve what it points at, an upload
        would copy it), by the drop's ship or by commit."""
        secret = tmp_path / "secret.txt"
        secret.write_bytes(b"what the link points at")
        staging = store.begin(KEY)
        drop = store.drop(staging, store.remote)
        folder = drop.folder()
        out = Output(folder, "000000", ranged=drop.ranged)
        out.write("a.txt", b"a", member="m/a.txt", source="src")
        out.close()
        os.symlink(secret, os.path.join(folder if writer == "task" else staging.path, "leak"))
        with pytest.raises(BuildError, match=r": 'leak' is a symbolic link leading out of the "
                           rf"artifact \(to '{secret}'\); refused: nothing is published$"):
            drop.ship(folder)
            store.gather(staging)
            store.commit(staging, finalized(staging))
        store.abort(staging)
        fs, root = store.filesystem()
        fs.invalidate_cache(root)
        assert store.marker(KEY) is None and list(store.committed()) == []
        assert not [p for p in fs.find(root) if fs.cat_file(p) == secret.read_bytes()]
        assert not os.path.exists(staging.path)

    def test_a_crashed_build_is_a_leftover_for_gc(self, store: Store) -> None:
        staging = store.begin(OTHER)
        run_fake_task(store, staging, "000000", {"x": b"1"})  # then the coordinator dies
        leftovers = store.leftovers()
        assert leftovers
        for path in leftovers:
            store.remove_leftover(path)
        assert store.leftovers() == [] and store.marker(OTHER) is None

    def test_delete_removes_the_artifact(self, store: Store) -> None:
        build(store)
        build(store, OTHER, {"y": b"y"})
        store.delete(KEY)
        assert store.marker(KEY) is None and list(store.committed()) == [OTHER]

    def test_verify_notices_a_changed_file(self, store: Store) -> None:
        build(store)
        fs, root = store.filesystem()
        fs.pipe_file(f"{root}/ab/{KEY}/b.txt", b"HELLO")
        assert [p.rsplit(": ", 1)[1] for p in store.verify(KEY)] == \
            ["content changed (xxh3 differs from the record)"]
