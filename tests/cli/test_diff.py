"""`registry diff A B [--json] [--limit N] [--exit-code]` as a user runs it: the text, the
JSON document, the exit codes, and one line for each thing that cannot be compared."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dataset_registry import Registry

from ..conftest import run_cli
from ..reports.test_diff import variants_project


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return variants_project(tmp_path_factory.mktemp("cli-diff"))


def seen(project: Path) -> dict[str, int]:
    """What a reader of the store sees: every file under it, with its size."""
    store = project / "registry"
    return {p.relative_to(store).as_posix(): p.stat().st_size for p in store.rglob("*")
            if p.is_file()}


def test_json_is_one_document_equal_to_the_api(project):
    out = run_cli("diff", "seed1", "seed2", "--json", "--limit", "5", cwd=project)
    assert (out.returncode, out.stderr) == (0, "")
    assert json.loads(out.stdout) == Registry.open(str(project)).diff("seed1", "seed2", limit=5)


def test_text_has_the_records_the_split_table_the_names_and_the_verdict(project):
    report = Registry.open(str(project)).diff("seed1", "seed2", limit=2)
    train = report["splits"][1]
    out = run_cli("diff", "seed1", "seed2", "--limit", "2", cwd=project)
    assert (out.returncode, out.stderr) == (0, "")
    lines = out.stdout.splitlines()
    assert lines[0].startswith(f"A: seed1  key {report['a']['key']}  (sample v1, 301 files, ")
    assert lines[1].startswith(f"B: seed2  key {report['b']['key']}  (sample v1, 301 files, ")
    assert lines[2] == "param seed: 1 -> 2"
    # not a terminal: the table as tab-separated lines
    assert lines[3] == "split\trows A\trows B\tadded\tremoved\tbytes changed\tlabel changed" \
                       "\tunchanged"
    assert lines[4] == "*\t1\t1\t0\t0\t0\t0\t1"
    assert lines[5] == (f"train\t300\t300\t{train['added']}\t{train['removed']}\t0\t0\t"
                        f"{train['unchanged']}")
    first = train["listed"]["added"][0]["name"]
    assert f"train  added  {first}  (train/{first})" in lines
    assert f"train  added  ... {train['added'] - 2:,} more (--limit N lists more than 2, " \
           "--json all counts)" in lines
    assert "class counts that changed:" in lines
    assert lines[-1] == "A and B differ"


def test_exit_code_says_whether_they_differ_only_when_asked(project):
    key = Registry.open(str(project)).key("seed1")
    assert run_cli("diff", "seed1", "seed2", cwd=project).returncode == 0
    assert run_cli("diff", "seed1", "seed2", "--exit-code", cwd=project).returncode == 1
    same = run_cli("diff", "seed1", key, "--exit-code", cwd=project)
    assert (same.returncode, same.stderr) == (0, "")
    assert same.stdout == (f"A (seed1) and B ({key}) are the same artifact (key {key}): they "
                           "differ in nothing\n")


@pytest.mark.parametrize(("args", "message"), [
    (("seed1", "seed3"), "B: no dataset, source or file named 'seed3' in "),
    (("unbuilt", "seed1"), "A: unbuilt is not built (key {unbuilt}); run: registry resolve "
                           "unbuilt"),
    (("seed1", "f" * 32), "B: no artifact with key " + "f" * 32 + " in the store "),
    (("digits", "seed1"), "A: digits is a source, not a dataset; diff compares built datasets"),
    (("seed1", "seed2", "--limit", "-1"), "diff: --limit -1: give how many names to list, "
                                          "0 or more"),
])
def test_what_cannot_be_compared_exits_2_in_one_line(project, args, message):
    before = seen(project)
    out = run_cli("diff", *args, cwd=project)
    assert out.returncode == 2
    assert out.stdout == ""
    assert "Traceback" not in out.stderr and out.stderr.count("\n") == 1
    unbuilt = Registry.open(str(project)).key("unbuilt")
    assert out.stderr.startswith("registry: error: " + message.format(unbuilt=unbuilt))
    assert seen(project) == before  # nothing built, nothing written


def test_diff_is_listed_in_help(project):
    out = run_cli("diff", "--help", cwd=project)
    assert out.returncode == 0
    for option in ("--json", "--limit N", "--exit-code"):
        assert option in out.stdout
