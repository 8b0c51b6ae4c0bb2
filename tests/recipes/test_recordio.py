"""recordio from the raw tars: im2rec's list, records and labels, checked."""

import random
from pathlib import Path

from dataset_registry.formats.recordio import iter_records, unpack_image
from dataset_registry.sources.index import member_sets
from dataset_registry.sources.members import read_member

from .shardkit import WNIDS, registry


def im2rec_list(names: list[str]) -> list[tuple[int, str, int]]:
    """What im2rec.py --list --recursive writes for class folders holding `names`."""
    folders = sorted({n.split("/")[0] for n in names})
    items = [(i, n, folders.index(n.split("/")[0])) for i, n in enumerate(sorted(names))]
    random.seed(100)
    random.shuffle(items)
    return items


def test_recordio_is_im2rec_identical_and_pass_through(tmp_path, synth_small):
    reg = registry(tmp_path, synth_small, "recordio", "require_all_classes: false")
    ds = reg.resolve("out", jobs=2)
    train = member_sets(reg.resolver.source_info("train"))["train"]
    names = [n for n in train.names if n.lower().endswith((".jpeg", ".jpg", ".png"))]
    present = sorted({n.split("/")[0] for n in names})
    expected = im2rec_list(names)
    lst = (Path(ds.path) / "train.lst").read_text().splitlines()
    # labels: sorted0 over the 1000 WNIDs (im2rec's own folder numbering would differ only
    # if a class were missing, which is why the default refuses such a source)
    assert lst == [f"{i}\t{WNIDS.index(present[lab]):f}\t{n}" for i, n, lab in expected]
    with open(Path(ds.path) / "train.rec", "rb") as f:
        records = list(iter_records(f))
    idx = (Path(ds.path) / "train.idx").read_text().splitlines()
    assert len(records) == len(expected) == len(idx) and ds.marker.files == 3
    for (offset, payload), (i, name, _), line in zip(records, expected, idx, strict=True):
        header, _, image = unpack_image(payload)
        assert header.id == i and header.flag == 0 and header.id2 == 0
        assert header.label == WNIDS.index(name.split("/")[0])
        assert image == read_member(train.get(name))  # the original bytes
        assert line == f"{i}\t{offset}"
    rows = reg.sql("SELECT byte_offset, label, member FROM files WHERE key = ? AND "
                   "path = 'train.rec' AND record IS NOT NULL ORDER BY record", [ds.key]).rows
    assert [r[0] for r in rows] == [off for off, _ in records]
    assert [r[2] for r in rows] == [f"{n.split('/')[0]}.tar/{n.split('/')[1]}"
                                    for _, n, _ in expected]


def test_recordio_one_and_two_workers_same_bytes(tmp_path, synth_small):
    digests = {registry(tmp_path / str(j), synth_small, "recordio",
                        "require_all_classes: false").resolve("out", jobs=j).digest
               for j in (1, 2)}
    assert len(digests) == 1




def test_the_plan_ends_in_small_tasks_and_the_bytes_never_depend_on_the_tasks(
        tmp_path, synth_small, monkeypatch):
    """The plan's last TAIL records go in tasks of TAIL_CHUNK (tasks.task_spans), each at
    its planned offset: the files are those of a plan of one task."""
    from dataset_registry.recipes import recordio, tasks

    digests = set()
    for chunk, tail, tail_chunk in ((10**6, 0, 64), (5, 4, 2)):
        monkeypatch.setattr(recordio, "CHUNK", chunk)
        monkeypatch.setattr(recordio, "TAIL", tail)
        monkeypatch.setattr(tasks, "TAIL_CHUNK", tail_chunk)
        reg = registry(tmp_path / str(chunk), synth_small, "recordio",
                       "require_all_classes: false")
        node = reg.manifests.get("out")
        plan = recordio.RecordIO.plan(node.params, reg.resolver.inputs(node)[0])
        n = sum(len(t) for t in plan)
        body = n - tail  # tasks of `chunk` up to the tail, then of `tail_chunk`
        want = [min(chunk, body - a) for a in range(0, body, chunk)] + \
            [min(tail_chunk, n - a) for a in range(body, n, tail_chunk)]
        assert want == ([n] if chunk > n else [5, 5, 1, 2, 2])  # (15 records)
        assert [len(t) for t in plan] == want
        assert [t.start for t in plan] == [sum(t.planned for t in plan[:i])
                                           for i in range(len(plan))]
        digests.add(reg.resolve("out", jobs=2).digest)
    assert len(digests) == 1


def test_a_record_holding_the_magic_is_split_and_the_file_laid_out_again(tmp_path):
    """Records are written in place at planned offsets; one that dmlc splits (the magic at
    an aligned position) comes out 4 bytes longer, and every later record moves."""
    import io
    import struct

    from PIL import Image

    from dataset_registry.formats.recordio import MAGIC, IRHeader, encode_record, pack_image

    from ..conftest import make_train_tar

    def jpeg(i: int) -> bytes:
        buf = io.BytesIO()
        Image.new("RGB", (8, 8), (i % 256, i // 256, 7)).save(buf, "JPEG")
        return buf.getvalue()

    classes = {w: {f"{w}_{i}.JPEG": jpeg(c * 200 + i) for i in range(150)}
               for c, w in enumerate(WNIDS[:4])}
    hidden = classes[WNIDS[2]][f"{WNIDS[2]}_7.JPEG"]
    hidden += b"\0" * (-len(hidden) % 4) + struct.pack("<I", MAGIC) + b"after the magic"
    classes[WNIDS[2]][f"{WNIDS[2]}_7.JPEG"] = hidden  # bytes after EOI: still a JPEG
    tar = make_train_tar(tmp_path / "train.tar", classes)
    digests = set()
    for jobs in (1, 2):
        reg = registry(tmp_path / str(jobs), {"imagenet-train": str(tar)}, "recordio",
                       "require_all_classes: false")
        ds = reg.resolve("out", jobs=jobs)
        digests.add(ds.digest)
    names = sorted(f"{w}/{n}" for w, images in classes.items() for n in images)
    expected = b"".join(
        encode_record(pack_image(IRHeader(0, float(label), i, 0),
                                 classes[name.split("/")[0]][name.split("/")[1]]))
        for i, name, label in im2rec_list(names))
    rec = (Path(ds.path) / "train.rec").read_bytes()
    assert rec == expected and len(rec) > 600 * 8
    flags = []
    with open(Path(ds.path) / "train.rec", "rb") as f:
        records = list(iter_records(f))
        f.seek(0)
        while head := f.read(8):
            _, lrec = struct.unpack("<II", head)
            flags.append(lrec >> 29)
            f.seek((lrec & ((1 << 29) - 1)) + (-(lrec & ((1 << 29) - 1)) % 4), 1)
    assert flags.count(1) == 1 and flags.count(3) == 1  # one record in two parts
    assert any(unpack_image(p)[2] == hidden for _, p in records)
    idx = [int(line.split("\t")[1]) for line in
           (Path(ds.path) / "train.idx").read_text().splitlines()]
    assert idx == [offset for offset, _ in records] and len(digests) == 1


def im2rec_list_image(root: str) -> list[tuple[int, str, int]]:
    """im2rec.py's list_image(root, recursive=True, exts) as MXNet 1.x writes it: an
    os.walk of real folders, sorted dirs and files, label = index of the folder."""
    import os

    i, cat, items = 0, {}, []
    for path, dirs, files in os.walk(root, followlinks=True):
        dirs.sort()
        files.sort()
        for fname in files:
            fpath = os.path.join(path, fname)
            if os.path.isfile(fpath) and os.path.splitext(fname)[1].lower() in (
                    ".jpeg", ".jpg", ".png"):
                if path not in cat:
                    cat[path] = len(cat)
                items.append((i, os.path.relpath(fpath, root), cat[path]))
                i += 1
    return items


def test_val_lst_is_what_im2rec_writes_for_the_valprepd_folder(tmp_path):
    """One val image of every class (so im2rec's own folder numbering is sorted0), moved
    into `<wnid>/` folders as valprep.sh does, listed by im2rec's logic: val.lst must be
    that file byte for byte."""
    import io

    from PIL import Image

    from ..conftest import make_tar
    from .shardkit import TRUTH

    first: dict[str, str] = {}
    for name, label in TRUTH.items():
        first.setdefault(label, name)
    members = {}
    for k, name in enumerate(sorted(first.values())):
        buf = io.BytesIO()
        Image.new("RGB", (8, 8), (k % 256, k // 256, 3)).save(buf, "JPEG")
        members[name] = buf.getvalue()
    assert len(members) == 1000
    folder = tmp_path / "valprep"
    for name, data in members.items():
        (folder / WNIDS[int(TRUTH[name])]).mkdir(parents=True, exist_ok=True)
        (folder / WNIDS[int(TRUTH[name])] / name).write_bytes(data)
    items = im2rec_list_image(str(folder))
    random.seed(100)
    random.shuffle(items)
    expected = "".join(f"{i}\t{float(label):f}\t{path}\n" for i, path, label in items)

    reg = registry(tmp_path, {"imagenet-val": str(make_tar(tmp_path / "val.tar", members))},
                   "recordio", "split: val")
    ds = reg.resolve("out", jobs=2)
    assert (Path(ds.path) / "val.lst").read_text() == expected
    with open(Path(ds.path) / "val.rec", "rb") as f:
        records = list(iter_records(f))
    for (_, payload), (i, path, label) in zip(records, items, strict=True):
        header, _, image = unpack_image(payload)
        assert (header.id, header.label) == (i, label)
        assert image == (folder / path).read_bytes()


def test_records_are_written_as_tasks_finish_with_the_bytes_finish_would_write(
        tmp_path, synth_small):
    """The follower writes each task's .lst lines, .idx lines and record rows in plan order
    as results arrive in any order (a resumed build's first), so `finish` has none left;
    the files and rows are those `finish` writes alone (no follower: a remote store)."""
    import csv

    from dataset_registry.artifact.marker import PARTS
    from dataset_registry.artifact.output import Output
    from dataset_registry.recipes.recordio import RecordIO

    reg = registry(tmp_path, synth_small, "recordio",
                   "split: val, require_all_classes: false")
    node = reg.manifests.get("out")
    inputs, _, _ = reg.resolver.inputs(node)
    written = {}
    for followed in (True, False):
        tasks = RecordIO.plan(node.params, inputs)
        assert len(tasks) > 2
        staging = tmp_path / f"staging-{followed}"
        out = Output(str(staging), "finish")
        follow = RecordIO.follow(node.params, tasks, out) if followed else None
        results = []
        for task in tasks:
            part = Output(str(staging), f"{task.index:06d}")
            results.append(RecordIO.run(node.params, task, part))
            part.close()
        if follow:
            order = list(range(len(tasks)))
            random.Random(1).shuffle(order)
            for index in order:
                follow(index, results[index])
            assert tasks.context.records.tasks == len(tasks)  # none left to finish
        RecordIO.finish(node.params, inputs, results, out, tasks.context)
        out.close()
        with open(staging / PARTS / "finish.files.csv", encoding="utf-8") as f:
            rows = sorted(tuple(row) for row in csv.reader(f))
        written[followed] = rows, [(staging / f"val.{ext}").read_bytes()
                                   for ext in ("lst", "idx", "rec")]
    assert written[True] == written[False]
    assert len(written[True][0]) == 600 + 3  # a row a record, and the three files
