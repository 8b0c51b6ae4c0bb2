"""Manifest loading: expansion, and every error names file, line and field."""

from pathlib import Path

import pytest

from dataset_registry.errors import ManifestError
from dataset_registry.manifest import DatasetNode, load_manifests

from .conftest import MANIFESTS, write_manifest

HEADER = """
sources:
  - name: val
    layout: imagenet-val
files:
  - name: labels
    path: labels.txt
"""


def load(tmp_path: Path, body: str):
    write_manifest(tmp_path, HEADER + body)
    (tmp_path / "manifests" / "labels.txt").write_text("ILSVRC2012_val_00000001.JPEG 65\n")
    (tmp_path / "manifests" / "list.txt").write_text("ILSVRC2012_val_00000001.JPEG\n")
    return load_manifests(str(tmp_path / "manifests"))


def error(tmp_path: Path, body: str) -> str:
    with pytest.raises(ManifestError) as info:
        load(tmp_path, body)
    return str(info.value)


def test_shipped_manifests_load_with_every_calibration_variant():
    m = load_manifests(str(MANIFESTS))
    names = {n.name for n in m.datasets()}
    for option in ("first.500", "mlperf.option1", "mlperf.option2", "first.1", "first.5",
                   "first.1.dup.5"):
        assert f"imagenet-calibration-{option}" in names
        assert f"imagenet-min-calibration-{option}" in names or option.startswith("mlperf")
    assert "imagenet-min-calibration-all.500" in names
    assert "imagenet2012-val-min" in names
    opt1 = m.get("imagenet-calibration-mlperf.option1")
    assert isinstance(opt1, DatasetNode)
    assert opt1.inputs["list"] == "imagenet/lists/mlperf_cal_image_list_option_1.txt"
    assert {"calibration", "mlperf.option1"} <= set(opt1.tags)
    assert m.by_tags(["calibration", "mlperf.option1"]) == [opt1]


def test_variants_expand_into_named_datasets(tmp_path):
    m = load(tmp_path, """
datasets:
  - name: cal-{option}
    recipe: calibration
    inputs: {images: val, labels: labels}
    variants:
      a: {params: {first: 1}, tags: [x]}
      b: {inputs: {list: list.txt}}
""")
    a, b = m.get("cal-a"), m.get("cal-b")
    assert a.params.first == 1 and a.tags == ("x",)
    assert b.params.first is None and b.inputs["list"] == "manifests/list.txt"


def test_matrix_expands_with_typed_placeholders(tmp_path):
    m = load(tmp_path, """
datasets:
  - name: sel-{n}-{split}
    recipe: select
    inputs: {images: val}
    params: {first: "{n}", split: "{split}"}
    matrix: {n: [1, 2], split: [val, train]}
""")
    assert sorted(d.name for d in m.datasets()) == [
        "sel-1-train", "sel-1-val", "sel-2-train", "sel-2-val"]
    assert m.get("sel-2-train").params.first == 2


def test_unknown_top_level_key(tmp_path):
    msg = error(tmp_path, "datasetz: []\n")
    assert msg == "manifests/test.yaml:8: datasetz: unknown field"


def test_unknown_param_names_variant_line(tmp_path):
    msg = error(tmp_path, """
datasets:
  - name: cal-{option}
    recipe: calibration
    inputs: {images: val, labels: labels}
    variants:
      a:
        params: {frist: 500}
""")
    assert msg == ("manifests/test.yaml:15: datasets[0].variants.a.params.frist (cal-a): "
                   "unknown field")


def test_wrong_type_is_an_error(tmp_path):
    msg = error(tmp_path, """
datasets:
  - name: sel
    recipe: select
    inputs: {images: val}
    params: {first: "500"}
""")
    assert msg.startswith("manifests/test.yaml:13: datasets[0].params.first (sel): Input should be")


def test_value_constraint(tmp_path):
    msg = error(tmp_path, """
datasets:
  - name: sel
    recipe: select
    inputs: {images: val}
    params:
      first: 0
""")
    assert msg.startswith("manifests/test.yaml:14: datasets[0].params.first (sel):")
    assert "greater than 0" in msg


def test_duplicate_names_across_files(tmp_path):
    write_manifest(tmp_path, "sources:\n  - {name: val, layout: imagenet-val}\n", "b.yaml")
    msg = error(tmp_path, "")
    assert "test.yaml:3: duplicate name 'val' (first defined at manifests/b.yaml:2)" in msg


def test_unknown_recipe(tmp_path):
    msg = error(tmp_path, """
datasets:
  - name: x
    recipe: downscale-magic
""")
    assert msg.startswith("manifests/test.yaml:11: datasets[0].recipe: unknown recipe "
                          "'downscale-magic'")


def test_missing_required_input(tmp_path):
    msg = error(tmp_path, """
datasets:
  - name: cal
    recipe: calibration
    inputs: {images: val}
""")
    assert msg.startswith("manifests/test.yaml:10: cal: inputs.labels: missing")


def test_unknown_input_name(tmp_path):
    msg = error(tmp_path, """
datasets:
  - name: sel
    recipe: select
    inputs: {images: imagenet-val-typo}
""")
    assert msg == ("manifests/test.yaml:10: sel: inputs.images: no dataset, source or file "
                   "named 'imagenet-val-typo'")


def test_missing_list_file(tmp_path):
    msg = error(tmp_path, """
datasets:
  - name: sel
    recipe: select
    inputs: {images: val, list: lists/nope.txt}
""")
    assert msg.startswith("manifests/test.yaml:12: datasets[0].inputs.list: file "
                          "'lists/nope.txt' does not exist")


def test_wrong_input_kind(tmp_path):
    msg = error(tmp_path, """
datasets:
  - name: sel
    recipe: select
    inputs: {images: labels}
""")
    assert "inputs.images: 'labels' is a file, but recipe 'select' needs images here" in msg


def test_dependency_cycle(tmp_path):
    msg = error(tmp_path, """
datasets:
  - name: a
    recipe: select
    inputs: {images: b}
  - name: b
    recipe: select
    inputs: {images: a}
""")
    assert "dependency cycle: a -> b -> a" in msg


def test_placeholder_without_variants(tmp_path):
    msg = error(tmp_path, """
datasets:
  - name: a-{x}
    recipe: select
    inputs: {images: val}
""")
    assert ("manifests/test.yaml:10: datasets[0].name: placeholder {x} but no variants or "
            "matrix") in msg


def test_yaml_syntax_error_names_line(tmp_path):
    msg = error(tmp_path, "datasets:\n  - name: [oops\n")
    assert msg.startswith("manifests/test.yaml:10:") and "invalid YAML" in msg
