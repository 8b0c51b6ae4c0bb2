"""`show`, `lineage` and `list` replay a remembered answer (cli/answers.py): the same bytes
as the full path, never a stale one, and without the Registry's imports."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dataset_registry import cli
from dataset_registry.cli import answers
from dataset_registry.engine import substituters

from .clikit import SPLIT, TINY, run

ANSWERS = Path(".registry-state") / "answers.json"
LINES = [("show", SPLIT), ("show", SPLIT, "--json"), ("show", "my-images"),
         ("lineage", TINY), ("lineage", TINY, "--json"), ("list",), ("list", "--json"),
         ("list", "--tags", "tiny")]


def full(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """The full path's answer: nothing remembered (and it remembers it again)."""
    ANSWERS.unlink(missing_ok=True)
    return run(capsys, *argv)


def replayed(capsys, monkeypatch, *argv: str) -> tuple[int, str, str]:
    """The answer, which must come from memory (the Registry's path fails the test)."""
    with monkeypatch.context() as fast:
        fast.setattr(cli, "_dispatch", lambda *a: pytest.fail(f"not replayed: {argv}"))
        return run(capsys, *argv)


def test_a_replay_prints_the_full_paths_bytes(project, capsys, monkeypatch):
    assert run(capsys, "resolve", SPLIT)[0] == 0
    for argv in LINES:
        answer = full(capsys, *argv)
        assert answer[0] == 0 and answer[1] and answer[2] == "", argv
        assert ANSWERS.exists(), argv
        assert replayed(capsys, monkeypatch, *argv) == answer
    assert full(capsys, "show", "no-such")[0] == 2  # an error is never remembered
    assert not ANSWERS.exists()


def _changes(project: Path, digits: Path) -> list[tuple[str, object]]:
    """Each something an answer depends on, and how to change it."""
    manifest = project / "manifests" / "my-images.yaml"

    def edit_manifest() -> None:
        manifest.write_text(manifest.read_text().replace(
            "a seeded stratified 80/20", "a seeded stratified 80 / 20"))

    def add_image() -> None:
        shutil.copy(next(digits.glob("0/*.png")), digits / "0" / "d9999.png")

    def damage_marker() -> None:
        marker = next((project / "registry").glob("??/*/_registry.json"))
        marker.chmod(0o644)
        marker.write_text("{")

    def remove_artifact() -> None:
        shutil.rmtree(next((project / "registry").glob("??/*")))

    def move_source() -> None:
        shutil.copytree(digits, digits.parent / "moved")
        assert cli.main(["source", "set", "my-images", str(digits.parent / "moved")]) == 0

    def remove_source() -> None:
        shutil.rmtree(digits)

    return [("the manifests", edit_manifest), ("the source's files", add_image),
            ("the marker", damage_marker), ("the store", remove_artifact),
            ("the source settings", move_source), ("the source itself", remove_source)]


def unnoted(answer: tuple[int, str, str]) -> tuple[int, str, str]:
    """The answer less its `note:` lines: the first reading of a changed source says so
    once (sources/index.py), whichever line reads it first."""
    code, out, err = answer
    return code, out, "".join(line for line in err.splitlines(keepends=True)
                              if not line.startswith("note: source "))


@pytest.mark.parametrize("change", range(6))
def test_a_replay_is_never_stale(project, capsys, monkeypatch, tmp_path, change):
    """After each change, every line answers what the full path answers now, which
    differs from what it answered before for at least one of them."""
    assert run(capsys, "resolve", SPLIT)[0] == 0
    before = {argv: full(capsys, *argv) for argv in LINES}
    for argv in LINES:
        run(capsys, *argv)  # remembered, all of them
    what, make = _changes(project, tmp_path / "digits")[change]
    make()
    after = {argv: unnoted(run(capsys, *argv)) for argv in LINES}  # stale here: a bug
    assert after == {argv: unnoted(full(capsys, *argv)) for argv in LINES}, what
    assert after != before, f"{what}: the test changed nothing the answers show"


def test_building_changes_the_status_shown(project, capsys, monkeypatch):
    shown = json.loads(full(capsys, "show", SPLIT)[1])
    assert shown["status"] == "missing" and "digest" not in shown
    assert run(capsys, "resolve", SPLIT)[0] == 0
    built = json.loads(run(capsys, "show", SPLIT)[1])
    assert built["status"] == "built" and built["files"] == 16
    assert replayed(capsys, monkeypatch, "show", SPLIT)[1] == full(capsys, "show", SPLIT)[1]


def test_caches_and_storage_options_are_never_remembered(project, capsys, monkeypatch,
                                                         tmp_path):
    """A missing dataset's status may be "in cache URL": only the cache can say."""
    assert answers.CACHES_ENV == substituters.CACHES_ENV  # named twice: answers imports less
    monkeypatch.setenv("DATASET_REGISTRY_CACHES", str(tmp_path / "team-cache"))
    assert full(capsys, "list")[0] == 0
    assert not ANSWERS.exists()
    monkeypatch.delenv("DATASET_REGISTRY_CACHES")
    toml = project / "registry.toml"
    kept = toml.read_text()
    toml.write_text(f"caches = [{str(tmp_path / 'team-cache')!r}]\n" + kept)
    assert full(capsys, "list")[0] == 0
    assert not ANSWERS.exists()
    toml.write_text(kept)
    assert full(capsys, "--storage-option", "anon=true", "list")[0] == 0
    assert not ANSWERS.exists()


def test_a_replay_imports_neither_the_engine_nor_pydantic(project, capsys):
    """What a replay costs is Python, argparse and a few stats: not pydantic's models, the
    YAML parser, the recipes, numpy, nor DuckDB (together ~0.25 s of imports)."""
    assert run(capsys, "resolve", SPLIT)[0] == 0
    heavy = ("pydantic", "yaml", "numpy", "duckdb", "PIL", "rich", "dataset_registry.api",
             "dataset_registry.manifest", "dataset_registry.recipes",
             "dataset_registry.engine.build", "dataset_registry.engine.keys")
    code = ("import sys\n"
            "from dataset_registry.cli import main\n"
            "rc = main(sys.argv[1:])\n"
            f"loaded = sorted(m for m in sys.modules if m.startswith({heavy!r}))\n"
            "print(rc, loaded, file=sys.stderr)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for argv in (["show", SPLIT], ["lineage", TINY], ["list"]):
        first = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True,
                               text=True, env=env)
        assert first.returncode == 0 and "dataset_registry.recipes" in first.stderr
        again = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True,
                               text=True, env=env)
        assert (again.stdout, again.stderr) == (first.stdout, "0 []\n"), argv
