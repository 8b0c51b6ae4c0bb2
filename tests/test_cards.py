"""Dataset cards (license, citation, homepage, meta): parsed, shown, recorded, never keyed;
and `pkg:` paths to package data."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from dataset_registry import Registry
from dataset_registry.catalog import SCHEMA, Catalog
from dataset_registry.core.keys import tree_key
from dataset_registry.errors import ManifestError
from dataset_registry.manifest import load_manifests

from .conftest import LABELS, MANIFESTS, copy_manifests, run_cli, write_manifest
from .realkit import digit_name, digits, png

CARDED = """
sources:
  - name: digits
    layout: image-folder
    license: CC BY 4.0
    homepage: https://archive.ics.uci.edu/dataset/80
    citation: Alpaydin and Kaynak, Optical Recognition of Handwritten Digits (1998)
    meta: {collector: UCI, writers: 43, tags: [small], nested: {ok: true}}
datasets:
  - name: digits-{n}
    recipe: select
    inputs: {images: digits}
    license: CC BY 4.0 (derived)
    meta: {kind: subset, n: many}
    variants:
      first3:
        params: {first: 3, split: train}
        meta: {n: 3}
      first5:
        params: {first: 5, split: train}
        license: CC0
        citation: mine
"""


def _digit_folders(root: Path, count: int = 20) -> Path:
    images, labels = digits()
    for i in range(count):
        folder = root / str(labels[i])
        folder.mkdir(parents=True, exist_ok=True)
        (folder / digit_name(i)).write_bytes(png(images[i]))
    return root


def test_cards_of_sources_datasets_and_variants(tmp_path):
    write_manifest(tmp_path, CARDED)
    m = load_manifests(str(tmp_path / "manifests"))
    assert m.get("digits").card == {
        "license": "CC BY 4.0", "homepage": "https://archive.ics.uci.edu/dataset/80",
        "citation": "Alpaydin and Kaynak, Optical Recognition of Handwritten Digits (1998)",
        "meta": {"collector": "UCI", "writers": 43, "tags": ["small"], "nested": {"ok": True}}}
    # a variant's field replaces the dataset's; its meta merges over the dataset's
    assert m.get("digits-first3").card == {"license": "CC BY 4.0 (derived)",
                                           "meta": {"kind": "subset", "n": 3}}
    assert m.get("digits-first5").card == {"license": "CC0", "citation": "mine",
                                           "meta": {"kind": "subset", "n": "many"}}


def test_shipped_imagenet_sources_carry_their_card():
    m = load_manifests(str(MANIFESTS))
    for name in ("imagenet2012-val", "imagenet2012-train", "imagenet-kaggle"):
        card = m.get(name).card
        assert card["homepage"] == "https://image-net.org"
        assert "non-commercial research" in card["license"]
        assert "Russakovsky" in card["citation"] and "IJCV" in card["citation"]
        assert "2015" in card["citation"]


def test_a_card_never_enters_a_key(tmp_path, synth_small):
    """Adding a license (and a meta) to a shipped dataset and its source leaves every key."""
    def keys(root: Path) -> dict[str, str]:
        reg = Registry.open(str(root), manifests=str(root / "manifests"))
        reg.set_source("imagenet2012-val", synth_small["imagenet-val"])
        return {n: reg.key(n) for n in ("imagenet2012-val", "imagenet2012-val-min",
                                        "imagenet-calibration-first.5", "imagenet-labels")}

    before = keys(copy_manifests(tmp_path / "a").parent)
    changed = copy_manifests(tmp_path / "b")
    cal = changed / "imagenet" / "calibration.yaml"
    text = cal.read_text()
    anchor = "    recipe: calibration\n"
    assert anchor in text
    cal.write_text(text.replace(anchor, anchor + "    license: CC BY 4.0\n"
                                "    meta: {reviewed: yes}\n", 1))
    src = changed / "imagenet" / "sources.yaml"
    src.write_text(src.read_text().replace("  homepage: https://image-net.org",
                                           "  homepage: https://example.org"))
    m = load_manifests(str(changed))
    assert m.get("imagenet-calibration-first.5").card["license"] == "CC BY 4.0"
    assert m.get("imagenet2012-val").card["homepage"] == "https://example.org"
    assert keys(changed.parent) == before


def test_show_marker_and_catalog_hold_the_card(tmp_path):
    write_manifest(tmp_path, CARDED)
    data = _digit_folders(tmp_path / "data")
    assert run_cli("source", "set", "digits", str(data), cwd=tmp_path).returncode == 0
    out = run_cli("resolve", "digits-first3", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    shown = run_cli("show", "digits-first3", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    info = json.loads(shown.stdout)
    assert info["card"] == {"license": "CC BY 4.0 (derived)", "meta": {"kind": "subset", "n": 3}}
    assert info["source_cards"]["digits"]["license"] == "CC BY 4.0"  # its source's terms
    source = json.loads(run_cli("show", "digits", cwd=tmp_path).stdout)
    assert source["card"]["homepage"] == "https://archive.ics.uci.edu/dataset/80"

    reg = Registry.open(str(tmp_path))
    built = reg.built("digits-first3")
    assert built.marker.card == info["card"]
    rows = reg.sql("SELECT name, card FROM artifacts").rows
    assert [(n, json.loads(c)) for n, c in rows] == [("digits-first3", info["card"])]
    cards = dict(reg.sql("SELECT name, card FROM nodes ORDER BY name").rows)
    assert json.loads(cards["digits"])["meta"]["writers"] == 43
    assert json.loads(cards["digits-first5"])["license"] == "CC0"

    # the card is recorded, not keyed: a license changed after the build keeps the artifact
    path = tmp_path / "manifests" / "test.yaml"
    path.write_text(path.read_text().replace("CC BY 4.0 (derived)", "CC0 (changed)"))
    again = Registry.open(str(tmp_path))
    assert again.status("digits-first3") == "built"
    assert again.key("digits-first3") == built.key
    assert again.built("digits-first3").marker.card["license"] == "CC BY 4.0 (derived)"


def test_an_old_catalog_gains_the_card_columns(tmp_path):
    """A catalog written before cards: nodes and artifacts gain `card`, rows are kept."""
    path = tmp_path / "catalog.duckdb"
    old = "\n".join(line for line in SCHEMA.splitlines() if "card" not in line)
    con = duckdb.connect(str(path))
    con.execute(old)
    con.execute("INSERT INTO nodes VALUES ('x', 'file', NULL, NULL, 'k', 'm.yaml', 1, [], '', "
                "'null')")
    con.close()
    catalog = Catalog(str(path))
    catalog.sync_nodes([{"name": "y", "kind": "source", "manifest": "m.yaml", "line": 2,
                         "tags": (), "description": "", "card": {"license": "MIT"}}], [], [],
                       "sig")
    con = duckdb.connect(str(path), read_only=True)
    cols = {t: [c for (c,) in con.execute(f"SELECT column_name FROM information_schema.columns "
                                          f"WHERE table_name = '{t}'").fetchall()]
            for t in ("nodes", "artifacts")}
    rows = con.execute("SELECT name, card FROM nodes").fetchall()
    con.close()
    assert cols["nodes"][-1] == "card" and cols["artifacts"][-1] == "card"
    assert [(n, json.loads(c)) for n, c in rows] == [("y", {"license": "MIT"})]


@pytest.mark.parametrize(("entry", "where", "what"), [
    ("    license: 12\n", ":5: sources[0].license", "valid string"),
    ("    meta: {released: 2012-10-01}\n", ":5: sources[0].meta.released",
     "a date is not JSON; quote it: '2012-10-01'"),
    ("    meta: [a, b]\n", ":5: sources[0].meta", "valid dictionary"),
    ("    homepage: {url: x}\n", ":5: sources[0].homepage", "valid string"),
])
def test_a_bad_card_is_named(tmp_path, entry, where, what):
    write_manifest(tmp_path, "\nsources:\n  - name: digits\n    layout: image-folder\n" + entry)
    out = run_cli("list", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.startswith(f"registry: error: manifests/test.yaml{where}"), out.stderr
    assert what in out.stderr and "Traceback" not in out.stderr


def test_a_variant_meta_date_is_named_at_the_variant(tmp_path):
    write_manifest(tmp_path, """
sources:
  - {name: digits, layout: image-folder}
datasets:
  - name: d-{v}
    recipe: select
    inputs: {images: digits}
    variants:
      a:
        params: {first: 1}
        meta: {released: 2020-01-01}
""")
    with pytest.raises(ManifestError, match=r"test.yaml:11: datasets\[0\]\.variants\.a\."
                       r"meta\.released: a date is not JSON"):
        load_manifests(str(tmp_path / "manifests"))


# -- pkg: paths ---------------------------------------------------------------------------------

def test_package_data_paths_work_wherever_the_project_lives(tmp_path):
    write_manifest(tmp_path, """
sources:
  - {name: val, layout: imagenet-val}
files:
  - {name: labels, path: "pkg:dataset_registry.domains.imagenet/data/labels"}
datasets:
  - name: cal
    recipe: calibration
    inputs: {images: val, labels: labels, list: "LIST"}
""".replace("LIST", "pkg:dataset_registry/domains/imagenet/manifests/imagenet/lists/"
             "cal_image_list_first_5.txt"))
    m = load_manifests(str(tmp_path / "manifests"))
    labels = m.get("labels")
    assert Path(labels.path) == LABELS.resolve()
    reg = Registry.open(str(tmp_path))
    assert reg.key("labels") == tree_key(str(LABELS))  # its content, not where it is
    listed = m.get("cal").inputs["list"]
    assert listed.startswith("pkg:dataset_registry/")
    assert reg.key(listed) == tree_key(str(MANIFESTS / "imagenet" / "lists" /
                                           "cal_image_list_first_5.txt"))


@pytest.mark.parametrize(("path", "what"), [
    ("pkg:no_such_package_xyz/data", "package 'no_such_package_xyz' is not importable"),
    ("pkg:/data", "names no package (write pkg:PACKAGE/PATH"),
    ("pkg:dataset_registry/no/such/file.txt", "does not exist"),
    ("pkg:dataset_registry/../../../../../../etc/hostname", "resolves outside the project"),
    # the label folder moved into the imagenet plugin: the old path says where it went
    ("pkg:dataset_registry/data/imagenet",
     "'pkg:dataset_registry/data/imagenet' has moved: write "
     "pkg:dataset_registry.domains.imagenet/data/labels"),
])
def test_a_bad_package_path_is_named(tmp_path, path, what):
    write_manifest(tmp_path, f'\nfiles:\n  - name: labels\n    path: "{path}"\n')
    out = run_cli("list", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.startswith("registry: error: manifests/test.yaml:4: files[0].path: "), \
        out.stderr
    assert what in out.stderr and "Traceback" not in out.stderr
