"""Source layouts, content fingerprints and the stat cache, on real tars and folders."""

import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from dataset_registry.core.remote import Remote
from dataset_registry.errors import SourceError
from dataset_registry.manifest import Expect, SourceNode
from dataset_registry.sources.index import check_expectations, check_source, member_sets
from dataset_registry.sources.location import LocalPlace
from dataset_registry.sources.members import read_member

from .. import tarkit
from ..conftest import make_tar, run_cli, write_manifest


def node(layout="imagenet-val", files=None, name="src"):
    return SourceNode(name=name, file="m.yaml", line=3, layout=layout,
                      expect=Expect(files=files))


def extract(tar_path, dest):
    opener = {"fileobj": tar_path} if hasattr(tar_path, "read") else {"name": tar_path}
    with tarfile.open(mode="r:", **opener) as tf:
        tf.extractall(dest, filter="data")
    return dest


def test_val_tar_and_its_extracted_folder_have_one_fingerprint(synth_small, tmp_path):
    tar = check_source(node(), synth_small["imagenet-val"], str(tmp_path / "c"))
    folder = check_source(node(), str(extract(synth_small["imagenet-val"], tmp_path / "v")),
                          str(tmp_path / "c"))
    assert tar.files == folder.files == 600
    assert tar.fingerprint == folder.fingerprint
    assert tar.synthetic and not folder.synthetic  # the marker lives in the tar's PAX header
    one = member_sets(tar)["val"].get("ILSVRC2012_val_00000007.JPEG")
    two = member_sets(folder)["val"].get("ILSVRC2012_val_00000007.JPEG")
    assert read_member(one) == read_member(two)
    assert one.offset > 0 and two.offset == 0


def test_train_tar_of_tars_equals_class_folders(synth_small, tmp_path):
    tar = check_source(node("imagenet-train"), synth_small["imagenet-train"], str(tmp_path / "c"))
    root = tmp_path / "train"
    with tarfile.open(synth_small["imagenet-train"]) as outer:
        for member in outer:
            extract(outer.extractfile(member), root / member.name.removesuffix(".tar"))
    folder = check_source(node("imagenet-train"), str(root), str(tmp_path / "c"))
    assert tar.fingerprint == folder.fingerprint
    refs = member_sets(tar)["train"]
    first = next(iter(refs))
    assert "/" in first.name and first.origin.split("/")[0].endswith(".tar")
    assert read_member(first) == (root / first.name).read_bytes()


def test_kaggle_layout_has_train_val_and_meta(synth_small, tmp_path):
    info = check_source(node("kaggle-cls-loc"), synth_small["kaggle-cls-loc"], str(tmp_path))
    sets = member_sets(info)
    assert set(sets) == {"train", "val", "meta"}
    val_tar = member_sets(check_source(node(), synth_small["imagenet-val"], str(tmp_path)))
    assert [r.name for r in sets["val"]] == [r.name for r in val_tar["val"]]
    assert info.synthetic


def test_wrong_layout_is_refused_with_the_expected_shape(synth_small, tmp_path):
    with pytest.raises(SourceError) as info:
        check_source(node(), synth_small["imagenet-train"], str(tmp_path))
    msg = str(info.value)
    assert "source src (" in msg and "ILSVRC2012_img_train.tar" in msg
    assert "does not fit layout 'imagenet-val'" in msg and "ILSVRC2012_val_%08d.JPEG" in msg


def test_a_file_for_a_folder_layout(synth_small, tmp_path):
    with pytest.raises(SourceError, match="is a file, but layout kaggle-cls-loc expects"):
        check_source(node("kaggle-cls-loc"), synth_small["imagenet-val"], str(tmp_path))


def test_wrong_count_names_the_expectation(tmp_path):
    tar = make_tar(tmp_path / "val.tar", {f"ILSVRC2012_val_{i:08d}.JPEG": b"x" for i in (1, 2)})
    n = node(files=50000)
    info = check_source(n, str(tar), str(tmp_path / "c"))
    assert not info.synthetic
    with pytest.raises(SourceError, match=r"expected 50000 images \(m.yaml:3: expect.files\), "
                                          r"found 2"):
        check_expectations(n, info)


def test_synthetic_sources_are_exempt_from_real_counts(synth_small, tmp_path):
    n = node(files=50000)
    check_expectations(n, check_source(n, synth_small["imagenet-val"], str(tmp_path)))


def test_missing_location(tmp_path):
    with pytest.raises(SourceError, match=r"does not exist; point it at your copy with: "
                                          r"registry source set src PATH"):
        check_source(node(), str(tmp_path / "nope.tar"), str(tmp_path))


def test_unchanged_source_is_not_reread_and_a_change_is_seen(synth_small, tmp_path, monkeypatch):
    tar = tmp_path / "val.tar"
    shutil.copy(synth_small["imagenet-val"], tar)
    calls = []
    real = LocalPlace.scan_tar
    monkeypatch.setattr(LocalPlace, "scan_tar", lambda *a: calls.append(a) or real(*a))
    first = check_source(node(), str(tar), str(tmp_path / "c"))
    again = check_source(node(), str(tar), str(tmp_path / "c"))
    assert len(calls) == 1 and again.fingerprint == first.fingerprint
    data = bytearray(tar.read_bytes())
    member = member_sets(first)["val"].get("ILSVRC2012_val_00000003.JPEG")
    data[member.offset + 100] ^= 0xFF
    tar.write_bytes(bytes(data))
    changed = check_source(node(), str(tar), str(tmp_path / "c"))
    assert len(calls) == 2 and changed.fingerprint != first.fingerprint


# -- hostile tars through `registry source set`, a build, and S3 -------------------------------

def _jpeg(i: int) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (24, 16), (i * 40 % 256, 90, 200)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _val(i: int) -> str:
    return f"ILSVRC2012_val_{i:08d}.JPEG"


def _val_tar(path, n: int = 5, *, garbage_at: int | None = None):
    """A val tar written header by header: './' names and no end-of-archive blocks (both
    readable), or a corrupt header in place of member `garbage_at`."""
    parts = [tarkit.member(f"./{_val(i)}", _jpeg(i)) for i in range(1, n + 1)]
    if garbage_at is not None:
        parts[garbage_at] = b"\x07garbage" * 64 + parts[garbage_at][512:]
    path.write_bytes(b"".join(parts))
    return path


SELECT = """
sources:
  - {name: val, layout: imagenet-val}
datasets:
  - {name: sel, recipe: select, inputs: {images: val}, params: {first: 3}}
"""


def test_a_refused_location_keeps_the_working_one(tmp_path):
    write_manifest(tmp_path, SELECT)
    good = _val_tar(tmp_path / "good.tar")
    assert run_cli("source", "set", "val", str(good), cwd=tmp_path).returncode == 0
    before = run_cli("list", cwd=tmp_path).stdout
    assert "source unset" not in before
    bad = _val_tar(tmp_path / "bad.tar", 2000, garbage_at=10)
    out = run_cli("source", "set", "val", str(bad), cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"source val ({bad}): {bad}: not a readable tar: byte " in out.stderr
    assert f"(after member '{_val(10)}') is not a valid tar header" in out.stderr
    show = run_cli("source", "show", cwd=tmp_path)
    assert str(good) in show.stdout and "bad.tar" not in show.stdout
    assert run_cli("list", cwd=tmp_path).stdout == before


def test_a_sparse_member_is_refused_at_source_set(tmp_path):
    write_manifest(tmp_path, SELECT)
    folder = tmp_path / "imgs"
    folder.mkdir()
    with open(folder / _val(1), "wb") as f:  # a JPEG-named file with a 2 MiB hole
        f.write(_jpeg(1))
        f.seek(2 << 20)
        f.write(b"end")
    subprocess.run([tarkit.GNU_TAR, "--sparse", "--format=pax", "-cf", str(tmp_path / "s.tar"),
                    "-C", str(folder), _val(1)], check=True)
    out = run_cli("source", "set", "val", str(tmp_path / "s.tar"), cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"s.tar: member '{_val(1)}' is a sparse file (GNU or PAX sparse format)" in out.stderr
    assert "(unset)" in run_cli("source", "show", cwd=tmp_path).stdout


def test_an_odd_but_readable_tar_builds_byte_exact_to_gnu_tar(tmp_path):
    write_manifest(tmp_path, SELECT)
    tar = _val_tar(tmp_path / "val.tar")
    assert run_cli("source", "set", "val", str(tar), cwd=tmp_path).returncode == 0
    out = run_cli("resolve", "sel", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    built = {p.name: p.read_bytes() for p in Path(out.stdout.strip()).rglob("*.JPEG")}
    rc, extracted = tarkit.gnu_extract(tar, tmp_path / "x")
    assert rc == 0 and len(extracted) == 5
    assert built == {_val(i): extracted[_val(i)] for i in (1, 2, 3)}


def test_imagenet_train_reads_only_the_per_class_tars(tmp_path):
    deeper = tarkit.tar_of({"x.JPEG": b"inner"})
    cls = tarkit.tar_of({"n01440764_1.JPEG": b"img", "deeper.tar": deeper})
    (tmp_path / "train.tar").write_bytes(tarkit.tar_of({"n01440764.tar": cls}))
    info = check_source(node("imagenet-train"), str(tmp_path / "train.tar"), str(tmp_path / "c"))
    refs = {r.name: read_member(r) for r in member_sets(info)["train"]}
    assert refs == {"n01440764/n01440764_1.JPEG": b"img", "n01440764/deeper.tar": deeper}


def test_a_corrupt_tar_on_s3_is_refused_as_locally(s3, tmp_path):
    bad = _val_tar(tmp_path / "bad.tar", 50, garbage_at=10)
    bucket = s3.bucket()
    bucket.fs().put(str(bad), f"{bucket.name}/bad.tar")
    url = f"{bucket.url}/bad.tar"
    with pytest.raises(SourceError) as remote:
        check_source(node(), url, str(tmp_path / "c"), remote=Remote(s3.options()))
    with pytest.raises(SourceError) as local:
        check_source(node(), str(bad), str(tmp_path / "c"))
    assert str(remote.value) == str(local.value).replace(str(bad), url)
    assert f"{url}: not a readable tar: byte " in str(remote.value)


def test_a_few_very_long_names_among_short_ones_sort_as_python_sorts(tmp_path):
    from dataset_registry.sources.indextable import IndexTable, first_rows, split_counts
    from dataset_registry.sources.layouts import Entry
    from dataset_registry.sources.members import StrColumn
    from dataset_registry.sources.tarindex import IndexedMember

    long_name = "/".join(["d" * 200] * 20)  # 4 KB, every component within 255 bytes
    names = [f"train/{n}" for n in ["b", long_name, "a", "c", long_name + "x", "é"]]
    rows = [(n, Entry("train", n[6:], f"cls{i % 2}"), IndexedMember(n, 0, i, "0" * 32))
            for i, n in enumerate(names)]
    table = IndexTable.from_rows(rows)
    repeat, moved = table.sort_by_name()
    assert moved and repeat == -1 and list(table.logical) == sorted(names)
    assert first_rows(table.labels) == [0, 2] and split_counts(table) == {"train": [6, 2]}
    wide = StrColumn.from_list(["x" * 2000, "", "a", "a", "x" * 2000] + ["b"] * 10)
    assert first_rows(wide) == [0, 2, 5]  # (compared as Python strings: one is too wide)
    twice = IndexTable.from_rows(rows + rows[:1])
    assert twice.sort_by_name()[0] == 2  # (rows "train/a", "train/b", "train/b": the third)
