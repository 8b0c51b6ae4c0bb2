"""The `registry` command as a user runs it: real subprocesses, exit codes, messages."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import as_from_a_terminal, copy_manifests, run_cli

CAL = "imagenet-min-calibration-first.5"


@pytest.fixture
def root(tmp_path, synth_small) -> Path:
    copy_manifests(tmp_path)
    shutil.copy(synth_small["imagenet-val"], tmp_path / "val.tar")
    out = run_cli("source", "set", "imagenet2012-val", "val.tar", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "600 images" in out.stdout and "SYNTHETIC" in out.stdout
    return tmp_path


def test_resolve_prints_the_path_and_the_fast_path_agrees(root):
    first = run_cli("resolve", CAL, cwd=root)
    assert first.returncode == 0, first.stderr
    path = first.stdout.strip()
    assert (Path(path) / "val_map.txt").exists() and "_registry.json" in " ".join(
        p.name for p in Path(path).iterdir())
    assert (root / ".registry-state" / "keys.json").exists()
    again = run_cli("resolve", CAL, cwd=root)
    assert again.returncode == 0 and again.stdout.strip() == path
    assert run_cli("path", CAL, cwd=root).stdout.strip() == path


def test_fast_path_notices_an_edited_manifest(root):
    before = run_cli("resolve", CAL, cwd=root).stdout.strip()
    lst = root / "manifests" / "imagenet" / "lists" / "cal_image_list_first_5.txt"
    lst.write_text(lst.read_text().replace("00000005", "00000006"))
    after = run_cli("resolve", CAL, cwd=root)
    assert after.returncode == 0 and after.stdout.strip() != before
    val_map = (Path(after.stdout.strip()) / "val_map.txt").read_text()
    assert "ILSVRC2012_val_00000006.JPEG" in val_map


def test_fast_path_notices_a_changed_source(root, synth_small):
    before = run_cli("resolve", "imagenet2012-val-min", cwd=root).stdout.strip()
    data = bytearray((root / "val.tar").read_bytes())
    data[-20000] ^= 0xFF  # inside the last members' bytes
    (root / "val.tar").write_bytes(bytes(data))
    after = run_cli("resolve", "--dry-run", "imagenet2012-val-min", cwd=root)
    assert "would build imagenet2012-val-min" in after.stdout
    assert run_cli("path", "imagenet2012-val-min", cwd=root).stdout.strip() != before


def test_dry_run_builds_nothing(root):
    out = run_cli("resolve", "--dry-run", CAL, cwd=root)
    assert out.returncode == 0
    assert out.stdout.splitlines()[0].startswith("would build imagenet2012-val-min")
    assert not (root / "registry").exists() or not any((root / "registry").glob("??/*"))


def test_resolve_by_tags_like_ck(root):
    out = run_cli("resolve", "--tags", "calibration,min,first.1.dup.5", cwd=root)
    assert out.returncode == 0, out.stderr
    # what tags match may be one dataset or many: each line names its dataset
    name, status, path = out.stdout.rstrip("\n").split("\t")
    assert (name, status) == ("imagenet-min-calibration-first.1.dup.5", "built now")
    text = (Path(path) / "val_map.txt").read_text()
    assert text == "ILSVRC2012_val_00000001.JPEG 65\n" * 5
    # tags no dataset carries: said so (a typo), with the tags there are; nothing built
    for tags, which in (("calibraton", "this tag"), ("min,nosuch", "all of these tags")):
        miss = run_cli("resolve", "--tags", tags, CAL, cwd=root)
        assert miss.returncode == 2 and miss.stdout == ""
        assert miss.stderr.startswith(f"registry: error: resolve --tags {tags}: no dataset "
                                      f"carries {which} (the datasets' tags: "), miss.stderr
        assert "calibration, " in miss.stderr


def test_list_show_lineage(root):
    run_cli("resolve", CAL, cwd=root)
    listing = run_cli("list", "--tags", "min", cwd=root).stdout
    rows = {line.split("\t")[0]: line.split("\t")[3] for line in listing.splitlines()[1:]}
    assert rows[CAL] == "built" and rows["imagenet-min-calibration-all.500"] == "missing"
    shown = json.loads(run_cli("show", CAL, cwd=root).stdout)
    assert shown["status"] == "built" and shown["files"] == 6 and shown["synthetic"] is True
    assert shown["inputs"]["images"] == "imagenet2012-val-min"
    lineage = run_cli("lineage", CAL, cwd=root).stdout
    fingerprint = json.loads(run_cli("show", "imagenet2012-val", cwd=root).stdout)["key"]
    assert f"key {fingerprint[:16]}" in lineage and "(SYNTHETIC)" in lineage
    assert "└── images: imagenet2012-val" in lineage.replace("│   ", "").replace("    ", "")


def test_sql_prints_and_refuses(root):
    run_cli("resolve", CAL, cwd=root)
    out = run_cli("sql", "SELECT name, files FROM artifacts ORDER BY name", "--format", "csv",
                  cwd=root)
    assert out.stdout.splitlines() == ["name,files", "imagenet-min-calibration-first.5,6",
                                       "imagenet2012-val-min,500"]
    refused = run_cli("sql", "COPY files TO 'x.csv'", cwd=root)
    assert refused.returncode == 2
    assert refused.stderr == ("registry: error: query refused: only SELECT runs on the catalog "
                              "(read-only and sandboxed), not COPY: COPY files TO 'x.csv'\n")
    assert not (root / "x.csv").exists()


def test_sql_opens_the_catalog_alone(root):
    """`registry sql` needs the catalog alone: no Registry is opened, so neither the
    manifests' models, the engine, numpy nor rich (into a pipe) load: together they cost
    twice DuckDB's own import, which is most of what a query takes."""
    run_cli("resolve", CAL, cwd=root)
    heavy = ("pydantic", "yaml", "numpy", "rich", "dataset_registry.api",
             "dataset_registry.engine", "dataset_registry.manifest", "dataset_registry.recipes")
    code = ("import sys\n"
            "from dataset_registry.cli import main\n"
            "rc = main(['sql', 'SELECT count(*) AS n FROM artifacts'])\n"
            f"loaded = sorted(m for m in sys.modules if m.startswith({heavy!r}))\n"
            "print(rc, loaded, file=sys.stderr)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert (out.stdout, out.stderr) == ("n\n2\n", "0 []\n")


def test_sql_refuses_a_bad_storage_option_as_every_command_does(tmp_path):
    """sql opens no store, yet a malformed --storage-option (or its variable) is still the
    one-line error, exit 2, that every other command gives, and nothing is made."""
    for extra, env in ((["--storage-option", "bad"], {}),
                       ([], {"DATASET_REGISTRY_STORAGE_OPTIONS": "bad"})):
        out = run_cli("sql", "SELECT 1", *extra, cwd=tmp_path, env={"TMPDIR": str(tmp_path),
                                                                   **env})
        assert (out.returncode, out.stdout) == (2, "")
        assert out.stderr == "registry: error: --storage-option 'bad': expected NAME=VALUE\n"
        assert list(tmp_path.iterdir()) == []


def test_manifest_error_exits_2_naming_file_line_field(root):
    cal = root / "manifests" / "imagenet" / "calibration.yaml"
    cal.write_text(cal.read_text().replace("params: {first: 500}\n    tags: [imagenet, val, min]",
                                           "params: {first: 500, colour: red}\n"
                                           "    tags: [imagenet, val, min]"))
    out = run_cli("list", cwd=root)
    assert out.returncode == 2
    assert out.stderr.startswith("registry: error: manifests/imagenet/calibration.yaml:28: "
                                 "datasets[0].params.colour (imagenet2012-val-min): unknown field")


def test_unknown_name_suggests(root):
    out = run_cli("resolve", "imagenet-calibration-first", cwd=root)
    assert out.returncode == 2 and "did you mean" in out.stderr


def test_unset_source_exits_2(tmp_path):
    copy_manifests(tmp_path)
    out = run_cli("resolve", CAL, cwd=tmp_path)
    assert out.returncode == 2
    assert "registry source set imagenet2012-val PATH" in out.stderr


def test_source_check_md5_on_a_synthetic_tar(root):
    out = run_cli("source", "check", "imagenet2012-val", "--md5", cwd=root)
    assert out.returncode == 0, out.stderr
    assert "synthetic stand-in, the published md5 does not apply" in out.stdout


def test_a_list_outside_the_project_exits_2_without_quoting_it(tmp_path, tmp_path_factory):
    secret = tmp_path_factory.mktemp("etc") / "shadow"
    secret.write_text("root:$6$secret-hash:19000:0:99999:7:::\n")
    copy_manifests(tmp_path)
    cal = tmp_path / "manifests" / "imagenet" / "calibration.yaml"
    cal.write_text(cal.read_text().replace("lists/cal_image_list_first_5.txt", str(secret)))
    out = run_cli("list", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith(f"registry: error: manifests/imagenet/calibration.yaml:17: "
                                 f"datasets[1].variants.first.5.inputs.list: file '{secret}' "
                                 "resolves outside the project")
    assert "Traceback" not in out.stderr and "secret-hash" not in out.stderr


LONG = "SELECT count(*) FROM range(1000000) a, range(1000000) b"  # hours of work


def test_sql_timeout_stops_a_long_query(tmp_path):
    started = time.monotonic()
    out = run_cli("sql", "--timeout", "1", LONG, cwd=tmp_path, env={"TMPDIR": str(tmp_path)})
    assert out.returncode == 1 and time.monotonic() - started < 30
    assert out.stderr == "registry: error: query stopped after 1s (the --timeout); narrow " \
                         "it, or give it more time with --timeout S\n"
    assert list(tmp_path.iterdir()) == []  # no catalog written, no temp folder left
    bad = run_cli("sql", "--timeout", "-1", "SELECT 1", cwd=tmp_path)
    assert bad.returncode == 2 and "--timeout -1: give seconds >= 0" in bad.stderr


def test_ctrl_c_stops_a_query_with_exit_130(tmp_path):
    query = subprocess.Popen(as_from_a_terminal([sys.executable, "-m", "dataset_registry.cli",
                                                 "sql", LONG]),
                             cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env={**os.environ, "TMPDIR": str(tmp_path)})
    deadline = time.monotonic() + 60
    while not any(tmp_path.glob("registry-sql-*/catalog.duckdb")):
        assert query.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(0.5)
    query.send_signal(signal.SIGINT)
    _, err = query.communicate(timeout=30)
    assert query.returncode == 130 and err == "registry: interrupted\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("signum", "code", "said"), [
    (signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_a_signal_inside_a_query_of_the_commands_own(tmp_path, monkeypatch, capsys, signum,
                                                    code, said, ctrl_c_raises):
    """Ctrl-C (SIGTERM) while the main thread runs a DuckDB query (a build reading its
    inputs' tables) comes back from DuckDB as RuntimeError("Query interrupted"): still
    Ctrl-C, exit 130 (SIGTERM, 143), not an unexpected error."""
    import threading

    import duckdb

    from dataset_registry import cli

    raised = []

    def dispatch(*_):
        # (first: the signal comes 0.5 s into the query.) One thread: DuckDB's Python client
        # sees a signal between the pieces of work its main thread runs; with more threads,
        # a piece a background thread holds (this cross product, whole) is waited for, and
        # whether it held it was a race: the test took 0.5 s or 84 s
        con = duckdb.connect(config={"threads": 1})
        threading.Timer(0.5, os.kill, (os.getpid(), signum)).start()
        try:
            con.execute(LONG).fetchall()
        except BaseException as exc:
            raised.append(type(exc))
            raise

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "_dispatch", dispatch)
    assert cli.main(["sql", "SELECT 1"]) == code
    assert raised == [RuntimeError]  # (DuckDB's, as it is)
    assert capsys.readouterr().err == f"registry: {said}\n"


def test_sql_csv_escapes_text_a_spreadsheet_would_run_and_keeps_numbers(tmp_path):
    """OWASP's CSV injection: text cells (and headers) starting with = + - @ tab or CR get
    a leading apostrophe; a negative number is not text and stays a number."""
    import csv
    import io

    query = ("SELECT '=HYPERLINK(\"http://x\")' AS \"=h\", -5 AS n, -1.5 AS f, '-5' AS t, "
             "'+1' AS plus, '@SUM(A1)' AS at, chr(9) || 'tab' AS tab, chr(13) || 'cr' AS cr, "
             "'a=b' AS inner_equals, NULL AS nothing")
    out = subprocess.run([sys.executable, "-m", "dataset_registry.cli", "sql", query,
                          "--format", "csv"], cwd=tmp_path, capture_output=True)  # bytes: CR kept
    assert (out.returncode, out.stderr) == (0, b"")
    header, row = csv.reader(io.StringIO(out.stdout.decode(), newline=""))
    assert header == ["'=h", "n", "f", "t", "plus", "at", "tab", "cr", "inner_equals",
                      "nothing"]
    assert row == ["'=HYPERLINK(\"http://x\")", "-5", "-1.5", "'-5", "'+1", "'@SUM(A1)",
                   "'\ttab", "'\rcr", "a=b", ""]


@pytest.mark.parametrize("columns", [80, 200])
def test_list_on_a_terminal_never_cuts_a_name(tmp_path, columns):
    """At 80 columns the table cannot hold `imagenet-min-calibration-first.1.dup.5` and
    the rest (rich cut every name to `imagenet-calib…`): one aligned line per entry then;
    wide enough, the table. TTY_COMPATIBLE=1 makes rich treat the pipe as a terminal."""
    assert run_cli("init", "--example", "imagenet", cwd=tmp_path).returncode == 0
    piped = run_cli("list", cwd=tmp_path)  # not a terminal: tab-separated, names whole
    names = [line.split("\t")[0] for line in piped.stdout.splitlines()[1:]]
    assert "imagenet-min-calibration-first.1.dup.5" in names and len(names) > 40
    out = run_cli("list", cwd=tmp_path, env={"TTY_COMPATIBLE": "1", "COLUMNS": str(columns)})
    assert (out.returncode, out.stderr) == (0, "")
    text = re.sub(r"\x1b\[[0-9;]*m", "", out.stdout)  # the header's bold
    assert "…" not in text and "\t" not in text
    lines = text.splitlines()
    if columns == 80:
        assert lines[0].split() == ["name", "kind", "recipe/layout", "status", "tags"]
        assert [line.split()[0] for line in lines[1:]] == names
        assert len({line.index(" dataset ") for line in lines if " dataset " in line}) == 1
    else:
        assert "┃ name" in text and max(map(len, lines)) <= columns
        assert [line.split("│")[1].strip() for line in lines if line.startswith("│")] == names
