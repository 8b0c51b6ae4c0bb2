"""`registry audit NAME [--json] [--no-near]`: a summary naming the first copies, or one
JSON document; exit 1 on a leak, 0 without, 2 on bad input (one line, nothing cached)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ..conftest import run_cli, write_manifest
from ..reports.test_audit import write_planted

MANIFEST = """
sources:
  - {name: photos, layout: image-folder}
  - {name: clean, layout: image-folder}
files:
  - {name: notes, path: notes.txt}
datasets:
  - {name: split, recipe: sample, inputs: {images: clean}, params: {splits: {a: 0.5, b: 0.5}}}
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """Sources `photos` (the planted copies) and `clean` (its tiles without any plant)."""
    root = tmp_path_factory.mktemp("audit-cli")
    write_planted(root / "photos")
    for path in (root / "photos").rglob("*"):
        if path.is_file() and path.parent.name != "tiny" and \
                not path.name.startswith(("copy-", "near-", "again-", "broken")):
            target = root / "clean" / path.relative_to(root / "photos")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    write_manifest(root, MANIFEST)
    (root / "manifests" / "notes.txt").write_text("not images\n")
    for name in ("photos", "clean"):
        done = run_cli("source", "set", name, str(root / name), cwd=root)
        assert done.returncode == 0, done.stderr
    return root


@pytest.fixture
def fresh(project, tmp_path) -> Path:
    """The project with a state folder of its own: no fingerprint cached yet."""
    root = tmp_path / "p"
    shutil.copytree(project, root, ignore=shutil.ignore_patterns("phash"))
    return root


def test_a_leak_exits_1_naming_the_first_copies(fresh):
    out = run_cli("audit", "photos", cwd=fresh)
    assert out.returncode == 1, out.stderr
    assert out.stderr == ""
    lines = out.stdout.splitlines()
    assert lines[0].startswith("source photos (fingerprint ") and "68 images in 2 splits" in \
        lines[0]
    assert "  train: 46 images, 7 classes, 3-8 a class (smallest tiny, largest chelsea, " \
        "ratio 2.667)" in lines
    at = lines.index("LEAK: 3 images in more than one split (exact copies), e.g.:")
    assert lines[at + 1] == "  train/astronaut/astronaut-00.png = " \
        "val/astronaut/copy-astronaut-00.png"
    at = lines.index("LEAK: 4 near copies across splits (pHash within 10 bits), e.g.:")
    assert lines[at + 1].startswith("  train/camera/camera-11.jpg ~ "
                                    "val/camera/near-camera-11.jpg (distance ")
    assert "  val/camera/broken.jpg: corrupt or truncated image: image file is truncated " \
        "(28 bytes not processed)" in lines
    assert not any(line.startswith("no leak") for line in lines)


def test_json_is_one_document_with_the_same_findings(fresh):
    out = run_cli("audit", "photos", "--json", "--threshold", "6", cwd=fresh)
    assert out.returncode == 1, out.stderr
    report = json.loads(out.stdout)
    assert list(report) == ["name", "kind", "key", "members", "splits", "exact_across",
                            "exact_within", "near_across", "undecodable", "counts", "near",
                            "limit", "leak"]
    assert report["counts"] == {"exact_across": 3, "exact_within": 1, "near_across": 4,
                                "undecodable": 1}
    assert report["near"]["threshold"] == 6 and report["leak"] is True


def test_no_leak_exits_0_and_says_so(fresh):
    out = run_cli("audit", "clean", cwd=fresh)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "no leak: no image has an exact or near copy in " \
        "another split"


def test_no_near_decodes_nothing_and_says_what_it_left_out(fresh):
    out = run_cli("audit", "photos", "--no-near", cwd=fresh)
    assert out.returncode == 1, out.stderr  # the exact copies alone are a leak
    assert "not checked (--no-near): near copies, undecodable images" in out.stdout
    assert "LEAK: 3 images in more than one split (exact copies), e.g.:" in out.stdout
    assert "near cop" not in out.stdout.replace("not checked (--no-near): near copies", "")
    assert not (fresh / ".registry-state" / "phash").exists()


def test_without_imagehash_it_says_so_in_one_line_and_checks_the_rest(fresh, tmp_path):
    hidden = tmp_path / "hidden"  # an ImageHash that is not there, as `import` sees it
    hidden.mkdir()
    (hidden / "imagehash.py").write_text("raise ImportError(\"No module named 'imagehash'\")\n")
    out = run_cli("audit", "photos", "--json", cwd=fresh, env={"PYTHONPATH": str(hidden)})
    assert out.returncode == 1  # the exact copies
    assert out.stderr == ("registry: warning: near copies not checked: ImageHash is not "
                          "installed; install ImageHash to check them: pip install ImageHash "
                          "(or, in a checkout: pip install -e '.[audit]')\n")
    report = json.loads(out.stdout)
    assert report["near"]["checked"] is False and report["near_across"] is None
    assert report["counts"]["undecodable"] == 1 and report["counts"]["exact_across"] == 3
    clean = run_cli("audit", "clean", cwd=fresh, env={"PYTHONPATH": str(hidden)})
    assert clean.returncode == 0 and "near copies not checked" in clean.stderr
    assert clean.stdout.splitlines()[-1] == "no leak: no image has an exact copy in another " \
        "split"
    # then, with ImageHash: what was only decoded is decoded again to be hashed (64 distinct
    # images of the 68), the undecodable one is not read again
    again = run_cli("audit", "photos", "--json", cwd=fresh)
    report = json.loads(again.stdout)
    assert report["near"]["checked"] and report["counts"]["near_across"] == 4
    assert report["near"]["images_decoded"] == 63


@pytest.mark.parametrize(("args", "message"), [
    (["photo"], "registry: error: no dataset, source or file named 'photo' in "),
    (["notes"], "registry: error: audit: notes is a file; audit a source or a dataset\n"),
    (["split"], "registry: error: split is not built (key "),
    (["photos", "--threshold", "65"], "registry: error: audit: a threshold of 65 bits is not "
                                      "within 0..64\n"),
])
def test_bad_input_exits_2_in_one_line_caching_nothing(fresh, args, message):
    out = run_cli("audit", *args, cwd=fresh)
    assert out.returncode == 2
    assert out.stderr.startswith(message) and out.stderr.count("\n") == 1
    assert out.stdout == "" and "Traceback" not in out.stderr
    assert not (fresh / ".registry-state" / "phash").exists()
    assert not (fresh / "registry").exists()  # nothing built either
