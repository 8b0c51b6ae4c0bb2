"""Folder sources follow symbolic links as torchvision's ImageFolder does (content, not
the link, in the fingerprint); a loop, a dangling link or a special file is refused by
name, never dropped silently."""

from __future__ import annotations

import os
import shutil

import pytest

from dataset_registry import Registry, SourceError
from dataset_registry.sources.index import member_sets

from ..conftest import run_cli, write_manifest
from ..realkit import digits, png

IMAGES, _ = digits()


def pets(root):
    for klass, offset in (("cat", 0), ("dog", 10)):
        (root / klass).mkdir(parents=True)
        for i in range(3):
            (root / klass / f"{i:04d}.png").write_bytes(png(IMAGES[offset + i]))
    return root


def open_source(root, location):
    write_manifest(root, "sources:\n  - {name: mine, layout: image-folder}\n")
    reg = Registry.open(str(root))
    reg.set_source("mine", str(location))
    return reg


def test_linked_class_folders_and_images_are_read_and_fingerprint_as_copies(tmp_path):
    real = pets(tmp_path / "real")
    linked = tmp_path / "linked"
    linked.mkdir()
    os.symlink(real / "cat", linked / "cat")  # a class folder kept elsewhere
    (linked / "dog").mkdir()
    for image in (real / "dog").iterdir():
        os.symlink(image, linked / "dog" / image.name)  # images linked one by one
    copied = tmp_path / "copied"
    shutil.copytree(real, copied)
    by_link = open_source(tmp_path / "a", linked)
    by_copy = open_source(tmp_path / "b", copied)
    assert by_link.key("mine") == by_copy.key("mine")
    refs = {r.name: r.label for r in member_sets(by_link.resolver.source_info("mine"))["train"]}
    assert refs == {f"{k}/{i:04d}.png": k for k in ("cat", "dog") for i in range(3)}


def test_an_edit_behind_a_link_re_indexes(tmp_path):
    real = pets(tmp_path / "real")
    linked = tmp_path / "linked"
    linked.mkdir()
    os.symlink(real / "cat", linked / "cat")
    os.symlink(real / "dog", linked / "dog")
    reg = open_source(tmp_path, linked)
    before = reg.key("mine")
    (real / "cat" / "0000.png").write_bytes(png(IMAGES[5]))
    assert Registry.open(str(tmp_path)).key("mine") != before


@pytest.mark.parametrize("how", ["loop", "dangling", "fifo"])
def test_a_loop_a_dangling_link_or_a_fifo_is_refused_naming_it(tmp_path, how):
    real = pets(tmp_path / "real")
    write_manifest(tmp_path, "sources:\n  - {name: mine, layout: image-folder}\n")
    assert run_cli("source", "set", "mine", str(real), cwd=tmp_path).returncode == 0
    bad = tmp_path / "bad"
    shutil.copytree(real, bad)
    if how == "loop":
        os.symlink("..", bad / "cat" / "again")
        why = f"{bad}/cat/again: a symbolic link to '..', a folder that holds it (a loop)"
    elif how == "dangling":
        os.symlink(tmp_path / "gone.png", bad / "cat" / "gone.png")
        why = f"{bad}/cat/gone.png: a symbolic link to '{tmp_path}/gone.png', which does not " \
              "exist"
    else:
        os.mkfifo(bad / "cat" / "pipe.png")
        why = f"{bad}/cat/pipe.png: a fifo, socket or device, not a file"
    out = run_cli("source", "set", "mine", str(bad), cwd=tmp_path, timeout=60)
    assert out.returncode == 2, out
    assert why in out.stderr and "Traceback" not in out.stderr
    with pytest.raises(SourceError):
        open_source(tmp_path / "other", bad)
    assert str(real) in (tmp_path / ".registry-state" / "sources.json").read_text()


def test_links_that_lead_to_each_other_are_named_a_loop(tmp_path):
    real = pets(tmp_path / "real")
    os.symlink(real / "cat" / "b.png", real / "cat" / "a.png")
    os.symlink(real / "cat" / "a.png", real / "cat" / "b.png")
    with pytest.raises(SourceError, match=r"cat/a.png: a symbolic link to .*links that lead "
                                          r"back to each other \(a loop\)"):
        open_source(tmp_path, real)


def test_empty_folders_are_named_and_follow_the_folder_without_reading_a_file_again(
        tmp_path, monkeypatch):
    """A class folder with no image in it makes no class: `source set` names it (and an
    empty folder deeper down, and one holding only hidden files), where the split's class
    count alone ("2 classes") would not say which folder was left out. Empty folders
    change no file: their coming or going hashes nothing again, and is said all the same."""
    from dataset_registry.sources import location

    data = pets(tmp_path / "data")
    (data / "bird").mkdir()
    (data / "eel").mkdir()
    (data / "eel" / ".gitkeep").write_bytes(b"")  # (how git keeps an empty folder)
    (data / "fish" / "deep").mkdir(parents=True)
    (data / ".ipynb_checkpoints").mkdir()  # (hidden: not named)
    write_manifest(tmp_path, "sources:\n  - {name: mine, layout: image-folder}\n")
    said = run_cli("source", "set", "mine", str(data), cwd=tmp_path)
    assert said.returncode == 0, said.stderr
    assert "  split train: 6 images, 2 classes\n" in said.stdout
    assert "  left out: 3 empty folder(s) (no file in them, hidden ones aside): bird/, eel/, " \
        "fish/deep/\n" in said.stdout
    reg = Registry.open(str(tmp_path))
    info = reg.resolver.source_info("mine")
    assert (info.empty_folders, info.empty_folders_first) == (3, ["bird", "eel", "fish/deep"])

    hashed: list[str] = []
    hash_file = location.hash_file
    monkeypatch.setattr(location, "hash_file", lambda p: hashed.append(p) or hash_file(p))
    for name in ("bird", "eel/.gitkeep", "eel", "fish/deep", "fish"):  # all gone
        path = data / name
        path.rmdir() if path.is_dir() else path.unlink()
    (data / "dog" / "empty").mkdir()  # and a new one
    again = Registry.open(str(tmp_path)).check_source("mine")
    assert (again.empty_folders, again.empty_folders_first) == (1, ["dog/empty"])
    assert again.fingerprint == info.fingerprint and hashed == []


def test_more_empty_folders_than_are_named_are_counted(tmp_path):
    data = pets(tmp_path / "data")
    for i in range(7):
        (data / f"z{i}").mkdir()
    reg = open_source(tmp_path, data)
    info = reg.resolver.source_info("mine")
    assert (info.empty_folders, info.empty_folders_first) == (7, [f"z{i}" for i in range(5)])
    said = run_cli("source", "check", "mine", cwd=tmp_path)
    assert "empty folder(s) (no file in them, hidden ones aside): z0/, z1/, z2/, z3/, z4/, " \
        "... (2 more)\n" in said.stdout, said.stdout
