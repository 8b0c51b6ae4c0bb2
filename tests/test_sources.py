"""Source layouts, content fingerprints and the stat cache, on real tars and folders."""

import shutil
import tarfile

import pytest

from dataset_registry.errors import SourceError
from dataset_registry.manifest import Expect, SourceNode
from dataset_registry.members import read_member
from dataset_registry.sourcefs import LocalPlace
from dataset_registry.sources import check_expectations, check_source, member_sets

from .conftest import make_tar


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
