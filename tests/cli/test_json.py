"""--json on every command that prints: one JSON document on stdout, with the keys the
README's table gives (asserted whole here, so a renamed or added key fails)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from dataset_registry import cli

from .clikit import SHARDS, SPLIT, TINY, run, run_json

HEX32 = re.compile(r"^[0-9a-f]{32}$")


def test_list_and_show(project, capsys):
    rows = run_json(capsys, "list")
    assert [r["name"] for r in rows] == ["my-images", TINY, SHARDS, SPLIT]
    assert rows[0] == {"name": "my-images", "kind": "source", "recipe": None,
                       "layout": "image-folder", "status": "ready", "tags": ["mine", "raw"]}
    assert rows[3] == {"name": SPLIT, "kind": "dataset", "recipe": "sample", "layout": None,
                       "status": "missing", "tags": ["mine", "split"]}
    assert run_json(capsys, "list", "--tags", "tiny") == [rows[1]]
    shown = run_json(capsys, "show", SPLIT)
    assert shown == run_json(capsys, "show", SPLIT)  # stable
    _, text, _ = run(capsys, "show", SPLIT)  # show's text is the same JSON

    assert json.loads(text) == shown
    assert {"name", "kind", "defined", "status", "key", "recipe", "params", "inputs",
            "card"} <= set(shown)


def test_resolve_path_and_lineage(project, capsys, monkeypatch):
    would = run_json(capsys, "resolve", "--dry-run", TINY)
    assert [w["name"] for w in would] == [SPLIT, TINY]
    assert set(would[0]) == {"name", "recipe", "key"} and HEX32.match(would[0]["key"])
    built = run_json(capsys, "resolve", SPLIT)
    key = built[0]["key"]
    location = str(project / "registry" / key[:2] / key)
    assert built == [{"name": SPLIT, "status": "built", "cache": None, "key": key,
                      "location": location}]
    with monkeypatch.context() as fast:  # again: from the key cache, in the same shape
        fast.setattr(cli, "_dispatch", lambda *a: pytest.fail("not the fast path"))
        assert run_json(capsys, "resolve", SPLIT) == [{**built[0], "status": "found"}]
        assert run_json(capsys, "path", SPLIT) == {"name": SPLIT, "key": key,
                                                   "path": location}
    os.remove(project / ".registry-state" / "keys.json")  # the full path, same answers
    assert run_json(capsys, "resolve", SPLIT) == [{**built[0], "status": "found"}]
    assert run_json(capsys, "path", SPLIT) == {"name": SPLIT, "key": key, "path": location}
    tree = run_json(capsys, "lineage", TINY)
    assert set(tree) == {"name", "kind", "role", "key", "status", "detail", "inputs"}
    assert (tree["name"], tree["role"], tree["status"]) == (TINY, None, "missing")
    assert [(i["role"], i["name"], i["status"]) for i in tree["inputs"]] == [
        ("train", SPLIT, "built"), ("val", SPLIT, "built")]
    source = tree["inputs"][0]["inputs"][0]
    assert (source["role"], source["name"], source["kind"], source["inputs"]) == (
        "images", "my-images", "source", [])


def test_verify_reports_damage_in_json_and_still_fails(project, capsys):
    path = Path(run_json(capsys, "resolve", SPLIT)[0]["location"])
    assert run_json(capsys, "verify") == {"checked": 1, "ok": True, "problems": {}}
    damaged = next(path.glob("train/*/*.png"))
    damaged.chmod(0o644)
    damaged.write_bytes(b"not the digit")
    code, out, err = run(capsys, "verify", SPLIT, "--json")
    assert code == 1

    report = json.loads(out)
    assert (report["checked"], report["ok"], list(report["problems"])) == (1, False, [SPLIT])
    assert report["problems"][SPLIT][0].startswith(f"{damaged}: size 13, recorded ")
    assert err.startswith("registry: error: verify failed:\n")


def test_sources_jobs_and_sql(project, capsys, tmp_path):
    shown = run_json(capsys, "source", "show")
    assert len(shown) == 1 and HEX32.match(shown[0]["fingerprint"])
    assert shown == [{"name": "my-images", "layout": "image-folder",
                      "location": str(tmp_path / "digits"),
                      "fingerprint": shown[0]["fingerprint"], "status": "ready"}]
    checked = run_json(capsys, "source", "check", "my-images")
    assert checked == {"name": "my-images", "layout": "image-folder",
                       "location": str(tmp_path / "digits"),
                       "fingerprint": shown[0]["fingerprint"], "images": 15, "bytes": 1832,
                       "synthetic": False, "splits": {"train": {"images": 15, "classes": 3}},
                       "left_out": 0, "left_out_first": [], "empty_folders": 0,
                       "empty_folders_first": [], "md5": None}
    again = run_json(capsys, "source", "set", "my-images", str(tmp_path / "digits"))
    assert again == checked
    assert run_json(capsys, "job", "list") == []  # the image-folder example has no jobs
    imagenet = tmp_path / "imagenet"
    assert cli.main(["init", "--example", "imagenet", str(imagenet)]) == 0
    jobs = run_json(capsys, "--root", str(imagenet), "job", "list")
    assert jobs and set(jobs[0]) == {"name", "datasets", "flavors", "defined"}
    assert isinstance(jobs[0]["datasets"], dict) and isinstance(jobs[0]["flavors"], list)
    assert run_json(capsys, "sql", "SELECT 41 + 1 AS answer") == [{"answer": 42}]


def test_pin_lock_gc_catalog_push_and_pull(project, capsys, tmp_path):
    key = run_json(capsys, "resolve", SPLIT)[0]["key"]
    assert run_json(capsys, "pin", SPLIT) == [{"name": SPLIT, "key": key}]
    assert run_json(capsys, "unpin", SPLIT) == [{"name": SPLIT, "key": key}]
    locked = run_json(capsys, "lock")
    assert locked == {"path": str(project / "registry.lock"), "changed": True, "sources": 1,
                      "datasets": 3, "not_locked": {}}
    assert run_json(capsys, "lock")["changed"] is False
    report = run_json(capsys, "gc", "--dry-run")
    assert set(report) == {"dry_run", "staging", "deleted", "kept", "unknown", "busy"}
    assert [a["key"] for a in report["kept"]] == [key] and report["deleted"] == []
    assert run_json(capsys, "catalog", "rebuild") == {
        "indexed": 1, "catalog": str(project / "catalog.duckdb")}
    other = tmp_path / "team-store"
    pushed = run_json(capsys, "push", SPLIT, "--to", str(other))
    assert len(pushed) == 1 and pushed[0]["name"] == SPLIT and pushed[0]["present"] is False
    assert set(pushed[0]) == {"name", "key", "from", "to", "present", "files", "bytes",
                              "copied", "copied_bytes", "kept"}
    assert pushed[0]["copied"] == pushed[0]["files"] == 16  # 15 images, classes.txt
    assert run_json(capsys, "push", SPLIT, "--to", str(other))[0]["present"] is True
    pulled = run_json(capsys, "--store", str(tmp_path / "mine"), "pull", SPLIT, "--from",
                      str(other))
    assert (pulled[0]["name"], pulled[0]["key"], pulled[0]["copied"]) == (SPLIT, key, 16)
