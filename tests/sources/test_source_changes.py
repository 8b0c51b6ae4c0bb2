"""Never a stale key: a source member edited in place is never built under the key of its
old content, whether the edit kept its size and mtime (`cp -p`, `rsync -t`, a restore
from backup) or happened while a build was running; tars and folders, local and S3."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import xxhash

from dataset_registry import Registry, SourceChangedError, cli
from dataset_registry.core.statsig import stat_signature

from ..conftest import make_tar, write_manifest
from ..realkit import digits, png, write_digit_folders

MANIFEST = """
sources:
  - {name: pets, layout: image-folder}
datasets:
  - {name: pets-all, recipe: select, inputs: {images: pets}, params: {split: train, folders: true}}
  - {name: pets-shards, recipe: webdataset, inputs: {images: pets}}
"""


def edit_in_place(path: Path, data: bytes) -> None:
    """Rewrite `path` with `data` (same size), then put its old mtime back, as `cp -p` or
    `rsync -t` of a re-encoded file leaves it."""
    st = path.stat()
    assert len(data) == st.st_size
    path.write_bytes(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_mtime_ns == st.st_mtime_ns and path.stat().st_size == st.st_size


def other_image(path: Path) -> bytes:
    """Another valid PNG of exactly `path`'s size (one pixel changed, re-encoded until the
    size matches)."""
    images, _ = digits()
    size = path.stat().st_size
    for pixels in images:
        data = png(pixels)
        if len(data) == size and data != path.read_bytes():
            return data
    pytest.skip("no digit of the same encoded size")


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    write_manifest(tmp_path, MANIFEST)
    write_digit_folders(tmp_path / "pets")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["source", "set", "pets", "pets"]) == 0
    return tmp_path


def test_an_edit_that_keeps_size_and_mtime_changes_the_signature(tmp_path):
    path = tmp_path / "a.png"
    images, _ = digits()
    path.write_bytes(png(images[0]))
    before = stat_signature(str(path))
    edit_in_place(path, other_image(path))
    assert stat_signature(str(path)) != before  # ctime moved, as git's index sees it
    folder = write_digit_folders(tmp_path / "f")
    before = stat_signature(str(folder))
    one = next(folder.glob("3/*.png"))
    edit_in_place(one, other_image(one))
    assert stat_signature(str(folder)) != before


def test_source_check_reindexes_an_image_edited_with_size_and_mtime_kept(project, capsys):
    assert cli.main(["resolve", "pets-all"]) == 0
    old_key = Registry.open(".").key("pets-all")
    one = next((project / "pets" / "7").glob("*.png"))
    edit_in_place(one, other_image(one))
    capsys.readouterr()
    assert cli.main(["source", "check", "pets"]) == 0
    # said, with what the user can check: the same count, other content, a new fingerprint
    assert capsys.readouterr().err.startswith(
        f"note: source pets ({project / 'pets'}) changed since it was last indexed (as many "
        "images and classes, other content; fingerprint ")
    assert cli.main(["resolve", "pets-all"]) == 0
    assert "changed since" not in capsys.readouterr().err  # (once: indexed again by then)
    new = Registry.open(".")
    assert new.key("pets-all") != old_key  # the new content has a new key
    table = dict(new.resolve("pets-all").files().project("path, xxh3").fetchall())
    assert table[f"7/{one.name}"] == xxhash.xxh3_128_hexdigest(one.read_bytes())


def test_an_image_removed_from_a_folder_is_said_as_the_next_resolve_reads_it(project,
                                                                                capsys):
    assert cli.main(["resolve", "pets-all"]) == 0
    next((project / "pets" / "3").glob("*.png")).unlink()
    capsys.readouterr()
    assert cli.main(["resolve", "pets-all"]) == 0
    err = capsys.readouterr().err
    assert "note: source pets" in err and "changed since it was last indexed (split " \
        "train: 1797 images in 10 classes before, 1796 images in 10 classes now; " \
        "fingerprint " in err, err  # (all the digits)
    assert "the datasets made from it are new variants, with new keys" in err


@pytest.mark.parametrize("dataset", ["pets-all", "pets-shards"])
def test_a_member_changed_after_indexing_fails_the_build_naming_it(project, dataset):
    """The edit lands between indexing and the build's read (a long build, or a
    filesystem that keeps ctime): the read-time check catches it, naming the member and
    the command that re-indexes; nothing is published."""
    reg = Registry.open(".")
    key = reg.key(dataset)  # indexed now; this Registry keeps the index it read
    one = next((project / "pets" / "2").glob("*.png"))
    edit_in_place(one, other_image(one))
    with pytest.raises(SourceChangedError) as err:
        reg.resolve(dataset, jobs=2)
    message = str(err.value)
    assert f"2/{one.name}" in message and "changed since it was indexed" in message
    assert "registry source check pets" in message
    assert err.value.exit_code == 2
    assert reg.store.marker(key) is None  # nothing a reader sees
    assert not list((project / "registry").glob("*/" + key))


def test_the_cli_says_it_in_one_line_with_exit_2(project, capsys, monkeypatch):
    """Through the CLI: a tar source whose member changed under a kept index (the cached
    index is kept by restoring the tar's stat signature in the cache: what a filesystem
    that does not move ctime would give)."""
    images, _ = digits()
    make_tar(project / "pets.tar", {"cat/1.png": png(images[0]), "dog/1.png": png(images[1])})
    assert cli.main(["source", "set", "pets", "pets.tar"]) == 0
    data = bytearray((project / "pets.tar").read_bytes())
    at = data.find(png(images[1]))
    data[at + 40] ^= 1  # one byte of dog/1.png's pixels, same size
    (project / "pets.tar").write_bytes(bytes(data))
    cache = project / ".registry-state" / "cache"
    for entry in cache.glob("*.json"):  # the index as if the tar's stat had not moved
        info = json.loads(entry.read_text())
        info["stat"] = stat_signature(str(project / "pets.tar"))
        entry.write_text(json.dumps(info))
    capsys.readouterr()
    assert cli.main(["resolve", "pets-all"]) == 2
    err = capsys.readouterr().err
    assert "'dog/1.png' changed since it was indexed" in err
    assert "run `registry source check pets`" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not [p for p in (project / "registry").glob("??/*") if p.is_dir()]


def test_an_artifact_file_changed_since_it_was_built_is_refused_as_an_input(project):
    write_manifest(project, MANIFEST + """
  - {name: pets-copy, recipe: select, inputs: {images: pets-all}, params: {split: "*",
     folders: true}}
""")
    reg = Registry.open(".")
    built = reg.resolve("pets-all")
    victim = Path(built.path) / next(p for p, in built.files().project("path").fetchall())
    os.chmod(victim, 0o644)
    edit_in_place(victim, other_image(victim))
    with pytest.raises(SourceChangedError, match="registry resolve --repair pets-all"):
        reg.resolve("pets-copy")


def test_a_changed_object_on_s3_is_caught_at_read(s3, tmp_path, monkeypatch):
    folder = write_digit_folders(tmp_path / "pets")
    bucket = s3.bucket()
    fs = bucket.fs()
    for path in sorted(folder.glob("0/*.png"))[:20] + sorted(folder.glob("1/*.png"))[:20]:
        fs.put_file(str(path), f"{bucket.name}/pets/{path.relative_to(folder)}")
    shutil.rmtree(folder)
    write_manifest(tmp_path, MANIFEST)
    monkeypatch.chdir(tmp_path)
    reg = Registry.open(".", storage_options=s3.options())
    reg.set_source("pets", f"{bucket.url}/pets")
    key = reg.key("pets-all")
    name = sorted(fs.ls(f"{bucket.name}/pets/1"))[0]
    data = bytearray(fs.cat_file(name))
    data[-20] ^= 1
    fs.pipe_file(name, bytes(data))
    with pytest.raises(SourceChangedError, match="changed since it was indexed"):
        reg.resolve("pets-all")
    assert reg.store.marker(key) is None
