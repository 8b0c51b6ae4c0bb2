"""`registry report NAME [-o PATH]`: the card written whole or not at all, to a file or to
standard output; exit 2 with one line for what cannot have a card."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ..conftest import run_cli
from ..reports.pagekit import parse
from ..reports.photokit import built_photos, make_project


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("photos")
    built_photos(root)
    return root


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_report_writes_the_card_beside_you_by_default(project):
    proc = run_cli("report", "photos-split", cwd=project)
    assert proc.returncode == 0, proc.stderr
    card = project / "photos-split.card.html"
    html = card.read_text()
    assert proc.stdout.strip() == (f"wrote photos-split.card.html ({len(html.encode()):,} "
                                   "bytes): the dataset card of photos-split")
    assert parse(html).h1 == "photos-split" and html.startswith("<!DOCTYPE html>")
    assert card.stat().st_mode & 0o777 == 0o644  # not the temporary file's 0600
    assert _leftovers(project) == []


def test_report_to_a_path_and_to_standard_output_give_the_same_page(project):
    (project / "cards").mkdir(exist_ok=True)
    proc = run_cli("report", "photos-wds", "-o", "cards/wds.html", cwd=project)
    assert proc.returncode == 0, proc.stderr
    out = run_cli("report", "photos-wds", "-o", "-", cwd=project)
    assert out.returncode == 0 and out.stderr == ""
    assert out.stdout == (project / "cards" / "wds.html").read_text()
    assert _leftovers(project / "cards") == []


def test_a_dataset_not_built_is_exit_2_saying_how_to_build_it(tmp_path):
    make_project(tmp_path)
    card = tmp_path / "photos-split.card.html"
    card.write_text("the card of last week")
    proc = run_cli("report", "photos-split", "-o", str(card), cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("registry: error: photos-split is not built (key ")
    assert proc.stderr.rstrip("\n").endswith("); run: registry resolve photos-split")
    assert len(proc.stderr.splitlines()) == 1 and "Traceback" not in proc.stderr
    assert card.read_text() == "the card of last week"  # nothing a reader sees changed
    assert _leftovers(tmp_path) == []
    assert not list((tmp_path / "registry").glob("*/*/_registry.json"))


@pytest.mark.parametrize(("args", "message"), [
    (["photos"], "photos is a source, not a dataset: a card shows a built dataset "
                 "(registry show photos shows what it is)"),
    (["photos-split", "-o", "nowhere/card.html"],
     "report: -o nowhere/card.html: folder {root}/nowhere does not exist"),
    (["photos-split", "-o", "cards"], "report: -o cards is a folder; name the file to write"),
])
def test_what_cannot_be_a_card_is_one_line_and_exit_2(project, args, message):
    (project / "cards").mkdir(exist_ok=True)
    before = sorted(p.name for p in project.rglob("*"))
    proc = run_cli("report", *args, cwd=project)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == f"registry: error: {message.format(root=project)}\n"
    assert sorted(p.name for p in project.rglob("*")) == before


def test_a_file_table_damaged_inside_is_exit_1_saying_how_to_repair(tmp_path):
    reg = make_project(tmp_path)
    table = Path(reg.resolve("photos-split", jobs=1).path) / "_files.parquet"
    table.parent.chmod(0o755)
    table.chmod(0o644)
    data = bytearray(table.read_bytes())
    data[4:len(data) // 2] = bytes(len(data) // 2 - 4)  # PAR1 at both ends: looks whole
    table.write_bytes(bytes(data))
    proc = run_cli("report", "photos-split", cwd=tmp_path)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith(f"registry: error: {table}: unreadable (")
    assert proc.stderr.endswith("); repair it with: registry resolve --repair photos-split\n")
    assert len(proc.stderr.splitlines()) == 1
    assert not (tmp_path / "photos-split.card.html").exists() and _leftovers(tmp_path) == []


@pytest.mark.parametrize("kind", ["link", "fifo", "missing-folder/", "file-as-folder"])
def test_o_refuses_what_is_not_a_new_or_regular_file(project, tmp_path, kind):
    """-o onto a link, a pipe or a device would replace it (as root: /dev/full); a folder
    path that does not exist, or a file given as a folder, is named for what it is."""
    target = tmp_path / "target.html"
    target.write_text("kept")
    if kind == "link":
        path = tmp_path / "link.html"
        path.symlink_to(target)
        why = "is not a regular file"
    elif kind == "fifo":
        path = tmp_path / "pipe"
        os.mkfifo(path)
        why = "is not a regular file"
    elif kind == "missing-folder/":
        path = tmp_path / "newdir"
        why = "is a folder; name the file to write"
    else:
        path = target / "x.html"
        why = "is not a folder"
    arg = str(path) + ("/" if kind == "missing-folder/" else "")
    proc = run_cli("report", "photos-split", "-o", arg, cwd=project)
    assert proc.returncode == 2 and why in proc.stderr and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1
    assert target.read_text() == "kept" and not (tmp_path / "newdir").exists()
    if kind == "link":
        assert path.is_symlink()
    if kind == "fifo":
        assert stat.S_ISFIFO(os.lstat(path).st_mode)
