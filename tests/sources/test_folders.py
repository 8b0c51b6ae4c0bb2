"""An archive's empty folders are named as a folder source's are (sources/folders.py): by
every reader of tars and zips, serial or on a pool, exactly the folders a folder source
names once GNU tar or Info-ZIP unzip extracted the archive (hidden ones aside); no layout
ever sees one, and no fingerprint changes."""

from __future__ import annotations

import io
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from dataset_registry.core.statsig import walk_stat
from dataset_registry.sources import nestedpool, zippool
from dataset_registry.sources.folders import EMPTY_FOLDER, empty_folders, split_left_out
from dataset_registry.sources.tarindex import scan_tar
from dataset_registry.sources.zipindex import scan_zip

from ..conftest import run_cli, write_manifest
from ..realkit import digits, png
from ..tarkit import END, GNU_TAR, longname, member
from ..zipkit import UNZIP
from .indexkit import indexed

IMAGES, _ = digits()
CAT, BIRD = png(IMAGES[0]), png(IMAGES[1])


def test_a_folder_is_empty_when_no_entry_lies_below_it_at_any_depth():
    explicit = ["data", "data/cat", "data/dog", "data/fish", "data/fish/deep", "data/eel"]
    parents = ["data/cat", "data/fish/deep/more", "data/eel"]  # (eel's file came first)
    assert empty_folders(explicit, parents) == ["data/dog/"]
    assert empty_folders([], parents) == []
    assert split_left_out(["a.txt", "dog/", "b/c.txt", "x/y/"]) == (["a.txt", "b/c.txt"],
                                                                   ["dog", "x/y"])


def _folder(name: str) -> bytes:
    return member(name, b"", b"5")


# a class folder with its image; an empty one; one below a folder with no entry of its
# own; an image in a folder with no entry (a folder's entry after it is refused: twice);
# hidden ones aside, as a folder's walk sees them: a folder holding only `.gitkeep`, or
# only a hidden folder of images, is empty, and an empty hidden folder is not named
ENTRIES = [_folder("data/"), _folder("data/cat/"), member("data/cat/a.png", CAT),
           _folder("data/dog/"), _folder("data/fish/deep/"), member("data/eel/b.png", BIRD),
           _folder("data/gnu/"), member("data/gnu/.gitkeep", b""),
           _folder("data/hen/"), member("data/hen/.cache/c.png", CAT),
           _folder("data/.ipynb_checkpoints/")]
EMPTY = ["data/dog/", "data/fish/deep/", "data/gnu/", "data/hen/"]


def _extracted_empty(archive: Path, tmp_path: Path, command: list[str]) -> list[str]:
    """The empty folders a folder source names (`walk_stat`) once the reference tool
    extracted the archive, sorted."""
    out = tmp_path / f"{archive.name}-x"
    out.mkdir()
    subprocess.run([*command, str(archive)], cwd=out, check=True, capture_output=True)
    empty: list[str] = []
    for _ in walk_stat(str(out), empty):
        pass
    shutil.rmtree(out)
    return sorted(f"{folder}/" for folder in empty)


@pytest.mark.skipif(not Path(GNU_TAR).exists(), reason="GNU tar is the referee")
@pytest.mark.parametrize("reader", ["fast", "strict"])
def test_both_tar_readers_give_the_folders_gnu_tar_extracts_empty(tmp_path, reader):
    # a GNU long name is no plain header: the fast reader gives the tar to the strict one
    extra = longname("data/cat/" + "c" * 120 + ".png") + member("x", BIRD) \
        if reader == "strict" else b""
    path = tmp_path / "data.tar"
    path.write_bytes(b"".join(ENTRIES) + extra + END)
    found = list(scan_tar(str(path)))
    folders = [m.path for m in found if m.xxh3 == EMPTY_FOLDER]
    assert folders == EMPTY == _extracted_empty(path, tmp_path, [GNU_TAR, "-xf"])
    assert all(not m.path.endswith("/") for m in found if m.xxh3 != EMPTY_FOLDER)


def _class_tars() -> bytes:
    """A tar of class tars (imagenet-train's layout); one holds an empty folder."""
    inner = {"n01440764.tar": [member("n01440764_1.JPEG", CAT)],
             "n01443537.tar": [member("n01443537_1.JPEG", BIRD), _folder("scans/")]}
    return b"".join(member(name, b"".join(entries) + END)
                    for name, entries in inner.items()) + _folder("notes/") + END


@pytest.mark.parametrize("how", ["serial", "pool"])
def test_a_tar_of_tars_names_its_empty_folders_at_any_depth_on_a_pool_or_not(
        tmp_path, monkeypatch, how):
    path = tmp_path / "train.tar"
    path.write_bytes(_class_tars())
    if how == "pool":
        monkeypatch.setattr(nestedpool, "PARALLEL_BYTES", 0)
        monkeypatch.setattr(nestedpool, "default_jobs", lambda: 3)
    else:
        monkeypatch.setattr(nestedpool, "PARALLEL_BYTES", 1 << 62)
    found, refusal = indexed(path, tmp_path / "cache", "imagenet-train")
    assert refusal is None
    fingerprint, files, _, left_out, _, empty, first, _ = found
    assert (files, left_out, empty, first) == (2, 0, 2, ["n01443537.tar/scans", "notes"])
    path.write_bytes(_class_tars().replace(_folder("scans/"), b"").replace(
        _folder("notes/"), b""))
    assert indexed(path, tmp_path / "cache2", "imagenet-train")[0][0] == fingerprint


def _python_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("data/cat/a.png", CAT)
        z.writestr("data/cat/", b"")  # (a folder's entry after its file)
        z.writestr("data/dog/", b"")
        z.writestr("data/fish/deep/", b"")
        z.writestr("data/eel/", b"")
        z.writestr("data/eel/b.png", BIRD)
        z.writestr("data/gnu/", b"")  # (hidden ones aside, as in the tar)
        z.writestr("data/gnu/.gitkeep", b"")
        z.writestr("data/hen/", b"")
        z.writestr("data/hen/.cache/c.png", CAT)
        z.writestr("data/.ipynb_checkpoints/", b"")
    return buf.getvalue()


@pytest.mark.skipif(not Path(UNZIP).exists(), reason="Info-ZIP unzip is the referee")
@pytest.mark.parametrize("how", ["serial", "pool"])
def test_zips_give_the_folders_unzip_extracts_empty(tmp_path, monkeypatch, how):
    path = tmp_path / "data.zip"
    path.write_bytes(_python_zip())
    if how == "pool":
        monkeypatch.setattr(zippool, "PARALLEL_BYTES", 0)
        monkeypatch.setattr(zippool, "RUNS_PER_WORKER", 3)
        scanned = zippool.scan_zip_local(str(path), jobs=3)
    else:
        scanned = scan_zip(str(path))
    folders = [m.path for m in scanned if m.xxh3 == EMPTY_FOLDER]
    assert folders == EMPTY == _extracted_empty(path, tmp_path, [UNZIP, "-q"])


@pytest.mark.skipif(shutil.which("zip") is None, reason="Info-ZIP zip is not installed")
@pytest.mark.parametrize("archive", ["tar", "zip"])
@pytest.mark.parametrize("how", ["serial", "pool"])
def test_source_set_names_an_archives_empty_class_folder(tmp_path, monkeypatch, archive, how):
    """What a user sees: `tar cf` or `zip -r` of class folders, one of them empty."""
    data = tmp_path / "pets"
    for klass, image in (("cat", CAT), ("bird", BIRD)):
        (data / klass).mkdir(parents=True)
        (data / klass / "0.png").write_bytes(image)
    (data / "dog").mkdir()
    path = tmp_path / f"pets.{archive}"
    command = [GNU_TAR, "cf", str(path), "pets"] if archive == "tar" else \
        ["zip", "-qr", str(path), "pets"]
    subprocess.run(command, cwd=tmp_path, check=True)
    if how == "pool":  # (a pool however small the archive: in this process, not the CLI's)
        for module in (nestedpool, zippool):
            monkeypatch.setattr(module, "PARALLEL_BYTES", 0)
        found, refusal = indexed(path, tmp_path / "cache", "image-folder")
        assert refusal is None and found[2] == {"train": [2, 2]}
        assert found[5:7] == (1, ["pets/dog"])
        return
    write_manifest(tmp_path, "sources:\n  - {name: mine, layout: image-folder}\n")
    said = run_cli("source", "set", "mine", str(path), cwd=tmp_path)
    assert said.returncode == 0, said.stderr
    assert "  split train: 2 images, 2 classes\n" in said.stdout
    assert "  left out: 1 empty folder(s) (no file in them, hidden ones aside): pets/dog/\n" \
        in said.stdout, said.stdout
