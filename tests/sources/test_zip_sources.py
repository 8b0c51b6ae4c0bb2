"""Zip archives as sources, read in place as tars are (tests/sources/test_zipindex.py holds the
reader against `unzip`): Kaggle's `train.zip` + `train_labels.csv`, class folders in a
zip (stored and deflated) with the fingerprint of the same files extracted, a zip on
S3 read by range, and a hostile zip refused at `source set`."""

from __future__ import annotations

import shutil
import struct
import subprocess
import zipfile
from pathlib import Path

import pytest

from dataset_registry import Registry

from ..conftest import run_cli, write_manifest
from ..realkit import digits, png
from ..zipkit import STORED, Entry, build_zip, extra

IMAGES, LABELS = digits()
CLASSES = """
sources:
  - {name: mine, layout: image-folder}
datasets:
  - {name: shards, recipe: webdataset, inputs: {images: mine}}
  - {name: copy, recipe: byclass, inputs: {images: mine}}
"""


def class_zip(path: Path, method: int) -> dict[str, bytes]:
    files = {f"{LABELS[i]}/digit-{i:04d}.png": png(IMAGES[i]) for i in range(60)}
    with zipfile.ZipFile(path, "w", compression=method) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return files


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED],
                         ids=["stored", "deflated"])
def test_class_folders_in_a_zip_build_as_the_extracted_folder(tmp_path, method):
    files = class_zip(tmp_path / "digits.zip", method)
    write_manifest(tmp_path, CLASSES)
    reg = Registry.open(str(tmp_path))
    reg.set_source("mine", str(tmp_path / "digits.zip"))
    zipped_key = reg.key("copy")
    built = reg.resolve("copy", jobs=2)
    for name, data in files.items():
        assert (Path(built.path) / name).read_bytes() == data
    if shutil.which("unzip"):
        out = tmp_path / "unzipped"
        subprocess.run(["unzip", "-q", str(tmp_path / "digits.zip"), "-d", str(out)],
                       check=True)
        other = tmp_path / "other"
        write_manifest(other, CLASSES)
        reg2 = Registry.open(str(other))
        reg2.set_source("mine", str(out))
        assert reg2.key("copy") == zipped_key  # identity is content, not container


def test_kaggle_train_zip_with_its_labels_csv_beside(tmp_path):
    import webdataset as wds

    names = [f"{i:05x}.png" for i in range(40)]
    with zipfile.ZipFile(tmp_path / "train.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        for i, name in enumerate(names):
            zf.writestr(f"train/{name}", png(IMAGES[i]))
    (tmp_path / "train_labels.csv").write_text("id,has_cactus\n" + "".join(
        f"train/{n},{int(LABELS[i]) % 2}\n" for i, n in enumerate(names)))
    write_manifest(tmp_path, """
sources:
  - name: cactus
    layout: files
    options: {table: train_labels.csv, file_column: id, label_column: has_cactus}
datasets:
  - {name: shards, recipe: webdataset, inputs: {images: cactus}}
""")
    out = run_cli("source", "set", "cactus", str(tmp_path / "train.zip"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "split train: 40 images, 2 classes" in out.stdout
    out = run_cli("resolve", "shards", "--jobs", "2", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    got = {s["__key__"]: (int(s["cls"]), s["png"])
           for shard in Path(out.stdout.strip()).glob("*.tar")
           for s in wds.WebDataset(str(shard), shardshuffle=False)}
    assert got == {n.removesuffix(".png"): (int(LABELS[i]) % 2, png(IMAGES[i]))
                   for i, n in enumerate(names)}


def test_a_zip_on_s3_is_read_by_range(s3, tmp_path):
    files = class_zip(tmp_path / "digits.zip", zipfile.ZIP_DEFLATED)
    bucket = s3.bucket()
    bucket.fs().put_file(str(tmp_path / "digits.zip"), f"{bucket.name}/digits.zip")
    write_manifest(tmp_path, CLASSES)
    reg = Registry.open(str(tmp_path), storage_options=s3.options())
    reg.set_source("mine", f"{bucket.url}/digits.zip")
    built = reg.resolve("copy", jobs=1)
    assert {p: (Path(built.path) / p).read_bytes() for p in files} == files


def test_an_encrypted_zip_is_refused_at_source_set(tmp_path):
    if not shutil.which("zip"):
        pytest.skip("no zip command to encrypt with")
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "a.png").write_bytes(png(IMAGES[0]))
    subprocess.run(["zip", "-q", "-P", "secret", "-r", "secret.zip", "cat"], cwd=tmp_path,
                   check=True)
    write_manifest(tmp_path, CLASSES)
    out = run_cli("source", "set", "mine", str(tmp_path / "secret.zip"), cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "secret.zip" in out.stderr and "cat/a.png" in out.stderr
    assert "encrypt" in out.stderr
    assert not (tmp_path / ".registry-state" / "sources.json").exists() or \
        "mine" not in (tmp_path / ".registry-state" / "sources.json").read_text()


def test_a_zip64_size_no_file_holds_is_refused_at_source_set(tmp_path):
    class_zip(tmp_path / "good.zip", zipfile.ZIP_DEFLATED)
    full, huge = 0xFFFFFFFF, 1 << 63  # (past int64: once a crash, not a refusal)
    (tmp_path / "huge.zip").write_bytes(build_zip([Entry("0/a.png", png(IMAGES[0]),
                                                         method=STORED, central={
        "usize": full, "csize": full, "extra": extra(1, struct.pack("<QQ", huge, huge))})]))
    write_manifest(tmp_path, CLASSES)
    assert run_cli("source", "set", "mine", str(tmp_path / "good.zip"),
                   cwd=tmp_path).returncode == 0
    state = tmp_path / ".registry-state" / "sources.json"
    before = state.read_bytes()
    out = run_cli("source", "set", "mine", str(tmp_path / "huge.zip"), cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].endswith(
        f"huge.zip: member '0/a.png' has a ZIP64 size of {huge:,} bytes, more than any file "
        "holds; refusing to read this zip")
    assert state.read_bytes() == before  # (the working source is kept)


@pytest.mark.parametrize("archive", ["zip", "tar"])
def test_an_archive_of_the_folder_itself_reads_as_the_folder(tmp_path, archive):
    """`zip -r pets.zip pets` / `tar cf pets.tar pets`: one top folder holding the class
    folders is the archive's root, as if extracted (the same fingerprint as the folder)."""
    import tarfile

    pets = tmp_path / "pets"
    for i in range(6):
        (pets / f"c{LABELS[i]}").mkdir(parents=True, exist_ok=True)
        (pets / f"c{LABELS[i]}" / f"{i:04d}.png").write_bytes(png(IMAGES[i]))
    if archive == "zip":
        with zipfile.ZipFile(tmp_path / "pets.zip", "w") as zf:
            for path in sorted(pets.rglob("*.png")):
                zf.write(path, path.relative_to(tmp_path).as_posix())
    else:
        with tarfile.open(tmp_path / "pets.tar", "w") as tf:
            tf.add(pets, "pets")
    write_manifest(tmp_path, CLASSES)
    reg = Registry.open(str(tmp_path))
    reg.set_source("mine", str(tmp_path / f"pets.{archive}"))
    packed = reg.key("mine")
    assert reg.resolve("copy", jobs=1).files().fetchall()
    other = tmp_path / "other"
    write_manifest(other, CLASSES)
    reg2 = Registry.open(str(other))
    reg2.set_source("mine", str(pets))
    assert reg2.key("mine") == packed
