"""A zip read on a pool gives what the serial reader gives: the same members in the same
order, or the same refusal after the same members, word for word."""

import itertools
import os
import time

import numpy as np
import pytest

from dataset_registry.errors import SourceError
from dataset_registry.sources import nestedpool, zipdirectory, zipindexing, zippool
from dataset_registry.sources.layouts import Entry, Layout, is_image_name
from dataset_registry.sources.zipindex import scan_zip

from ..zipkit import damaged_zips, hostile_zips, python_zip
from .indexkit import indexed, zip_on_a_pool

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
    offsets = np.array([e.offset for e in order], np.int64)
    runs = list(zippool._runs(offsets, cd_offset, 3))
    assert len(runs) > 3 and runs[0][0] == 0 and runs[-1][1] == len(order)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(runs))  # each where the last ended
    shares = [offsets[stop] - offsets[start] if stop < len(order) else cd_offset - offsets[start]
              for start, stop in runs]
    assert max(shares) < 3 * (cd_offset // (3 * zippool.RUNS_PER_WORKER))  # about equal


NESTED = ["a/", "a/x.jpg", "a/b/", "a/b/y.jpg", "a/b/z.jpg", "top.jpg", "a/w.jpg", "c/é/v.jpg",
          "c/e/v.jpg", "a/b/q.jpg", "ab/x.jpg", "a/bb/y.jpg", "a/b/c/", "a/b/c/d.jpg", "b.jpg"]


def test_runs_end_where_a_folder_ends_found_by_folder_hashes_as_by_paths(tmp_path):
    """The fast reader's folder hashes end a run's last folder where comparing the paths
    (the strict reader's directory) does: folder entries, files at the top, a folder left
    and come back to, names alike but for a byte or a length, non-ASCII names."""
    from dataset_registry.sources.zipindex import _find_directory, _read_directory

    path = tmp_path / "nested.zip"
    path.write_bytes(python_zip({n: b"" if n.endswith("/") else PHOTO for n in NESTED}))
    fast = zippool.read_central(str(path), path.stat().st_size).directory
    with open(path, "rb") as f:
        found = _find_directory(f, path.stat().st_size, str(path))
        strict = zipdirectory.Directory.from_entries(_read_directory(f, *found, str(path)))
    assert fast.parent is not None and strict.parent is None
    order = fast.file_order()
    by_hashes, by_paths = zippool._folder_ends(fast, order), zippool._folder_ends(strict, order)
    ends = [by_paths(k, len(order)) for k in range(1, len(order))]
    assert [by_hashes(k, len(order)) for k in range(1, len(order))] == ends
    assert ends == [1, 3, 3, 5, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]  # (a/x.jpg and a/b/ in a/,
    # a/b/y.jpg and a/b/z.jpg in a/b/; no two others in a row share one)
    assert all(by_hashes(k, limit) == min(by_paths(k, limit), limit)
               for k in range(1, len(order)) for limit in range(k, len(order) + 1))


def test_a_run_in_directory_order_is_sent_as_where_its_records_lie(tmp_path):
    """A run of entries in directory and file order goes to its worker as five numbers; the
    worker reads the same run from the zip (every column, name and path) as the columns the
    coordinator would have sent. Runs out of directory order, and directories of the strict
    reader, go as columns."""
    path = tmp_path / "nested.zip"
    path.write_bytes(python_zip({n: b"" if n.endswith("/") else PHOTO + n.encode()
                                 for n in NESTED}))
    central = zippool.read_central(str(path), path.stat().st_size)
    directory, cd_offset = central.directory, central.cd_offset
    order = directory.file_order()
    offsets = directory.offset[order]
    fields = ("rows", "names", "name_starts", "paths", "path_starts", "columns")
    with open(path, "rb") as f:
        for start, stop in [(0, len(order)), (0, 1), (3, 9), (14, 15), (5, 6)]:
            rows = order[start:stop]
            task = zippool._task(directory, rows, offsets, stop, cd_offset, 4)
            assert isinstance(task, zippool.RecordsRun), (start, stop)
            got = task.read(f, cd_offset, str(path))
            want = zippool.Run.of(directory, rows, offsets, stop, cd_offset)
            for name in fields:
                assert np.array_equal(getattr(got, name), getattr(want, name)), name
    shuffled = order[[2, 1, 3]]  # (not in directory order: its columns)
    assert isinstance(zippool._task(directory, shuffled, offsets, 4, cd_offset, 4), zippool.Run)
    few = zippool.RECORDS_FROM - 1  # (so few workers that the coordinator keeps up: columns)
    assert isinstance(zippool._task(directory, order, offsets, len(order), cd_offset, few),
                      zippool.Run)


@pytest.mark.parametrize("change", ["a record's signature", "other bytes, same names and sizes"])
def test_a_zip_whose_directory_changed_while_it_was_read_is_refused(tmp_path, change):
    """A worker that reads its run's records again and finds they no longer read, or say
    other things of their members (a CRC), says the zip changed while it was read, naming
    it: no index of two zips at once."""
    path = tmp_path / "photos.zip"
    path.write_bytes(python_zip(MEMBERS))
    central = zippool.read_central(str(path), path.stat().st_size)
    order = central.directory.file_order()
    offsets = central.directory.offset[order]
    task = zippool._task(central.directory, order, offsets, len(order), central.cd_offset, 4)
    if change == "a record's signature":
        data = bytearray(path.read_bytes())
        data[central.cd_offset:central.cd_offset + 4] = b"XXXX"
        data = bytes(data)
    else:
        data = python_zip({name: bytes(reversed(body)) for name, body in MEMBERS.items()})
        assert len(data) == path.stat().st_size  # (every record where it was)
    path.write_bytes(data)
    with pytest.raises(SourceError, match="central directory changed while it was read"):
        zippool.read_run(str(path), task, central.cd_offset, len(data))


def _recording_pools(monkeypatch):
    """The pools `read_central` starts, as it starts them."""
    started = []
    real = zippool._start_pool

    def start(path, jobs):
        started.append(real(path, jobs))
        return started[-1]

    monkeypatch.setattr(zippool, "_start_pool", start)
    return started


def test_a_zips_workers_start_while_its_directory_is_read(tmp_path, pooled, monkeypatch):
    """The pool's workers are spawned on a thread as the directory is read (the reading
    waits here until all 3 are up, so they cannot have come after it), and that pool reads
    the members: one pool, the serial reading's members."""
    path = tmp_path / "photos.zip"
    path.write_bytes(python_zip(MEMBERS))
    started = _recording_pools(monkeypatch)
    real = zippool.read_directory
    workers = []

    def reading(*args):
        pool = started[0][0]
        deadline = time.monotonic() + 60
        while len(pool._processes or {}) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        workers.append(len(pool._processes))
        return real(*args)

    monkeypatch.setattr(zippool, "read_directory", reading)
    zippool.pools_started.clear()
    found = list(zippool.scan_zip_local(str(path), jobs=3))
    assert workers == [3] and len(started) == 1
    assert found == list(scan_zip(str(path))) and zippool.pools_started[str(path)] == 1
    with pytest.raises(RuntimeError, match="shutdown"):  # (done with: shut down)
        started[0][0].submit(zippool.read_run)


def test_a_refused_directory_shuts_the_workers_started_meanwhile_down(tmp_path, monkeypatch):
    path = tmp_path / "photos.zip"
    data = bytearray(python_zip(MEMBERS))
    data[-22 + 10:-22 + 12] = (999).to_bytes(2, "little")  # (the end record's entry count)
    path.write_bytes(bytes(data))
    started = _recording_pools(monkeypatch)
    with pytest.raises(SourceError):
        zippool.read_central(str(path), len(data), 3)
    assert len(started) == 1
    with pytest.raises(RuntimeError, match="shutdown"):
        started[0][0].submit(zippool.read_run)


def test_a_pool_that_cannot_start_reads_serially(tmp_path, pooled, monkeypatch):
    path = tmp_path / "photos.zip"
    path.write_bytes(python_zip(MEMBERS))

    def broken(*args, **kwargs):
        raise nestedpool.BrokenProcessPool("no workers")
        yield  # (a generator, like the pool's)

    monkeypatch.setattr(zippool, "_scan_parallel", broken)
    assert list(zippool.scan_zip_local(str(path), jobs=3)) == list(scan_zip(str(path)))


def _dying_pools(monkeypatch):
    """Pools whose every worker exits as it starts (status 3), as `read_central` starts
    them: the early-started pool breaks, it does not refuse."""
    from concurrent.futures import ProcessPoolExecutor

    from dataset_registry.core.processes import Spawning, nothing, worker_context

    started = []

    def start(path, jobs):
        pool = ProcessPoolExecutor(jobs, mp_context=worker_context(), initializer=os._exit,
                                   initargs=(3,))
        started.append((pool, Spawning(pool, jobs, nothing)))
        return started[-1]

    monkeypatch.setattr(zippool, "_start_pool", start)
    return started


def _no_threads_but(before):
    """The threads left now that were not there `before` (waiting a moment for daemon ones
    to end)."""
    import threading

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        left = [t.name for t in threading.enumerate() if t not in before and t.is_alive()]
        if not left:
            return []
        time.sleep(0.05)
    return left


@pytest.mark.parametrize("table", [False, True])
def test_an_early_started_pool_whose_workers_die_hands_the_zip_to_the_serial_reading(
        tmp_path, monkeypatch, table):
    """Every worker of the pool started while the directory is read dies: the members and
    the index are the serial reading's, and no thread of the pools is left after."""
    import threading

    data = _with_a_table() if table else python_zip(MEMBERS)
    path = zip_on_a_pool(tmp_path, monkeypatch, data)
    before = set(threading.enumerate())
    started = _dying_pools(monkeypatch)
    assert list(zippool.scan_zip_local(str(path), jobs=3)) == list(scan_zip(str(path)))
    pooled = _index(path, tmp_path / "a")
    assert pooled[1] is None and pooled[0][1] == (len(CLASSES) if table else len(MEMBERS))
    # The members' reading started one pool; the index two (its own, then its serial
    # reading's, which tries a pool again before reading in this process), or with a
    # table one (the serial reading takes the pool started while the directory was read).
    assert len(started) == (2 if table else 3)
    monkeypatch.setattr("dataset_registry.sources.indexing.index_zip", lambda *_: None)
    assert pooled == _index(path, tmp_path / "b")
    assert _no_threads_but(before) == []


# The index of a zip source on a pool: members read and placed by workers


def _index(path, cache, layout="image-folder", **options):
    return indexed(path, cache, layout, options)


def _both(tmp_path, monkeypatch, data, layout="image-folder", **options):
    """The index on a pool of 3 and serially, which must agree; and whether the pool
    places the members itself (not handing back to the serial reading)."""
    from dataset_registry.sources.layouts import open_layout

    path = zip_on_a_pool(tmp_path, monkeypatch, data)
    pooled = _index(path, tmp_path / "a", layout, **options)
    try:
        placed = isinstance(zipindexing.index_zip(str(path), open_layout(layout, options),
                                                  None), tuple)
    except SourceError:
        placed = True  # (refused by the pool's reading itself)
    monkeypatch.setattr("dataset_registry.sources.indexing.index_zip", lambda *_: None)
    serial = _index(path, tmp_path / "b", layout, **options)
    return pooled, serial, placed


PHOTO = b"\xff\xd8" + bytes(range(256)) * 3


def _zip(names):
    return python_zip({n: PHOTO + n.encode() for n in names})


CLASSES = [f"{c}/{c}-{i}.jpg" for c in ("cat", "dog", "owl") for i in range(7)]
SHAPES = {
    "class folders": CLASSES,
    "one folder around them (zip -r)": [f"pets/{n}" for n in CLASSES],
    "split folders": [f"{s}/{n}" for s in ("train", "val") for n in CLASSES[::2]],
    "split folders in a folder": [f"data/{s}/{n}" for s in ("train", "val") for n in CLASSES],
    "a split word around class folders": [f"train/{n}" for n in CLASSES],
    "left out: other files, hidden folders, litter": [
        *CLASSES, "README.txt", "cat/notes.md", ".git/x.jpg", "__MACOSX/cat/._a.jpg",
        "dog/.b.jpg", "owl/Thumbs.db"],
    "flat, unlabelled": [f"img-{i}.png" for i in range(9)],
    "one image at the top": [*CLASSES, "cover.jpg"],
    "images at two depths": [*CLASSES, "train/cat/deep.jpg"],
    "a class name a file cannot hold": [*CLASSES, " /x.jpg"],  # (a tab: the reader refuses)
    "a metadata table (read serially)": [*CLASSES, "metadata.csv"],
    "table names, no table": [*CLASSES, ".meta/metadata.csv", "cat/metadata.csv.txt",
                              "__MACOSX/metadata.jsonl", "dog/metadata.jsonl-old"],
    "no image": ["a.txt", "b/c.txt"],
    "out of name order": list(reversed(CLASSES)),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_an_image_folder_zip_indexes_on_a_pool_as_serially(tmp_path, monkeypatch, shape):
    names = SHAPES[shape]
    data = _zip(names)
    if shape.startswith("a metadata table"):
        table = "file_name,label\n" + "".join(f"{n},{n.split('/')[0]}\n" for n in CLASSES)
        data = python_zip({**{n: PHOTO for n in CLASSES}, "metadata.csv": table.encode()})
    pooled, serial, placed = _both(tmp_path, monkeypatch, data)
    assert pooled == serial
    assert placed == (not shape.startswith("a metadata table")), shape
    refused = shape in ("images at two depths", "a class name a file cannot hold", "no image",
                        "one image at the top")
    assert (serial[1] is not None) == refused, serial[1]


def _with_a_table(folder=""):
    """A zip of class folders and a metadata.csv in `folder` naming each image's class."""
    table = "file_name,label\n" + "".join(f"{n},{n.split('/')[0]}\n" for n in CLASSES)
    return python_zip({**{folder + n: PHOTO for n in CLASSES},
                       f"{folder}metadata.csv": table.encode()})


@pytest.mark.parametrize("folder", ["", "train/"])
def test_a_zip_holding_a_table_is_read_once_on_one_pool(tmp_path, monkeypatch, folder):
    """image-folder reads a metadata table in one process: told so by the directory's
    names, no pool surveys the names first, and the serial reading (on its pool) reads
    the members from the directory read already."""
    path = zip_on_a_pool(tmp_path, monkeypatch, _with_a_table(folder))
    reads, pools = zipdirectory.reads[str(path)], zippool.pools_started[str(path)]
    found, refusal = _index(path, tmp_path / "a")
    assert refusal is None and found[1] == len(CLASSES)
    assert found[2] == {folder.rstrip("/") or "train": [len(CLASSES), 3]}  # (the table's)
    assert zipdirectory.reads[str(path)] - reads == 1
    assert zippool.pools_started[str(path)] - pools == 1


def test_every_damaged_zip_holding_a_table_indexes_as_serially(tmp_path, monkeypatch):
    outcomes = {"read": 0, "refused": 0}
    for name, data in damaged_zips(_with_a_table(), 20, 5).items():
        pooled, serial, placed = _both(tmp_path / name, monkeypatch, data)
        assert pooled == serial, name
        assert serial[1] or not placed, name  # (read: serially; refused: by either)
        outcomes["refused" if serial[1] else "read"] += 1
    assert outcomes["read"] > 0 and outcomes["refused"] > 10, outcomes


@pytest.mark.parametrize("splits", ["yes", "no"])
def test_the_splits_option_places_members_on_a_pool_as_serially(tmp_path, monkeypatch,
                                                                 splits):
    pooled, serial, placed = _both(tmp_path, monkeypatch, _zip(SHAPES["split folders"]),
                                   splits=splits)
    assert pooled == serial and placed


def test_every_hostile_and_damaged_zip_indexes_on_a_pool_as_serially(tmp_path, monkeypatch):
    cases = dict(hostile_zips())
    cases.update(damaged_zips(python_zip({f"c{i % 3}/m{i}.jpg": d for i, d in
                                          enumerate(MEMBERS.values())}), 40, 11))
    # a member refused, and a member the layout cannot place: which is said first
    cases["crc and depth"] = _flip_crc(_zip([*CLASSES, "train/cat/deep.jpg"]), 5)
    outcomes = {"read": 0, "refused": 0}
    for name, data in cases.items():
        pooled, serial, _ = _both(tmp_path / name, monkeypatch, data)
        assert pooled == serial, name
        outcomes["refused" if serial[1] else "read"] += 1
    assert outcomes["read"] > 5 and outcomes["refused"] > 30, outcomes


def _flip_crc(data: bytes, member: int) -> bytes:
    """The zip with one member's data changed (its CRC-32 then fails)."""
    at = -1
    for _ in range(member + 1):
        at = data.index(b"PK\x03\x04", at + 1)
    name_len, extra_len = int.from_bytes(data[at + 26:at + 28], "little"), \
        int.from_bytes(data[at + 28:at + 30], "little")
    body = at + 30 + name_len + extra_len
    return data[:body] + bytes([data[body] ^ 1]) + data[body + 1:]


def test_a_by_name_layout_refuses_on_a_pool_as_serially(tmp_path, monkeypatch):
    """imagenet-val places each member as it comes: a member it refuses is said before a
    later member the reader refuses, and after an earlier one."""
    names = [f"ILSVRC2012_val_{i:08d}.JPEG" for i in range(1, 13)]
    for bad, damaged in ((3, 8), (8, 3)):
        odd = list(names)
        odd[bad] = "not-a-val-image.JPEG"
        tmp = tmp_path / f"{bad}-{damaged}"
        pooled, serial, placed = _both(tmp, monkeypatch, _flip_crc(_zip(odd), damaged),
                                       "imagenet-val")
        assert pooled == serial and serial[1] is not None and placed
        assert ("not-a-val-image" in serial[1]) == (bad < damaged), serial[1]


class _Stems(Layout):
    """Each image by its path less its extension: x.jpg and x.png are one name twice."""

    name = "stems"
    expects = "images"

    def classify(self, origin, is_tar):
        return Entry("train", origin.rsplit(".", 1)[0]) if is_image_name(origin) else None


def test_a_name_twice_is_refused_on_a_pool_as_serially(tmp_path, monkeypatch):
    """Most pairs lie in one run: the pool's parts, each sorted, must not vouch that the
    table holds each name once."""
    from dataset_registry.sources import indexing
    from dataset_registry.sources.location import LocalPlace

    names = [n[:-4] + ext for n in CLASSES for ext in (".jpg", ".png")]
    path = zip_on_a_pool(tmp_path, monkeypatch, _zip(names))
    assert zipindexing.index_zip(str(path), _Stems(), None)[2] is None  # (placed on a pool)

    def refusal():
        with pytest.raises(SourceError) as exc:
            indexing.read_index(LocalPlace(str(path)), _Stems(), True, (), "source s", None,
                                "s")
        return str(exc.value)

    pooled = refusal()
    monkeypatch.setattr(indexing, "index_zip", lambda *_: None)
    assert pooled == refusal() == "source s: two members are both 'train/cat/cat-0' in the dataset"


def test_progress_counts_each_byte_once_where_the_pool_hands_back(tmp_path, monkeypatch):
    """A pool that read some members and then handed back (a worker died, a name fits no
    table): the serial reading reads them again, and the bar counts them once."""
    from dataset_registry.manifest import SourceNode
    from dataset_registry.sources import index, indexing

    path = tmp_path / "source.zip"
    path.write_bytes(python_zip({n: PHOTO + n.encode() for n in CLASSES}))
    packed = sum(m.packed for m in scan_zip(str(path)))

    def read_half_and_hand_back(location, layout, progress):
        progress(packed // 2)
        return None

    monkeypatch.setattr(indexing, "index_zip", read_half_and_hand_back)
    counted = []

    class Bar:
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            return counted.append

        def __exit__(self, *exc):
            return False

    node = SourceNode(name="src", file="m.yaml", line=3, layout="image-folder")
    info = index.check_source(node, str(path), str(tmp_path / "c"), force=True, progress=Bar)
    assert info.files == len(CLASSES) and sum(counted) == packed, (sum(counted), packed)


def test_counted_progress_is_silent_until_a_second_reading_passes_the_first():
    from dataset_registry.core.progress import Counted

    seen = []
    first = Counted(seen.append)
    for n in (5, 7):
        first(n)
    again = first.again()
    for n in (3, 4, 6, 2):
        again(n)
    assert seen == [5, 7, 1, 2] and sum(seen) == 15


@pytest.mark.parametrize("shape", SHAPES)
def test_a_share_is_surveyed_from_its_records_as_from_its_paths(tmp_path, shape):
    """Where the fast reader read the directory, a worker surveys its share of the names by
    reading their records itself: the same surveys as from the paths the coordinator would
    send (which a directory of the strict reader sends)."""
    import dataclasses

    from dataset_registry.sources.layouts import open_layout

    path = tmp_path / "shape.zip"
    path.write_bytes(_zip(SHAPES[shape]))
    directory = zippool.read_central(str(path), path.stat().st_size).directory
    layout = open_layout("image-folder", {})
    as_paths = dataclasses.replace(directory, records=None)
    task, *args = zipindexing._survey_tasks(str(path), as_paths, 0, 4, layout)
    assert task is zipindexing._survey
    surveys = list(map(task, *args))
    few = zippool.RECORDS_FROM - 1  # (so few workers that the coordinator keeps up: paths)
    assert zipindexing._survey_tasks(str(path), directory, 0, few, layout)[0] is \
        zipindexing._survey
    assert any(surveys) == (shape != "no image")  # (folders holding images or tables)
    if directory.records is None:  # (the strict reader's: a name it alone reads)
        assert shape == "a class name a file cannot hold"
        return
    task, *args = zipindexing._survey_tasks(str(path), directory,
                                            zippool.read_central(str(path), path.stat().st_size)
                                            .cd_offset, 4, layout)
    assert task is zipindexing._survey_records and list(map(task, *args)) == surveys
