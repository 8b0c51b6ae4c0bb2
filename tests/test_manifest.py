"""Manifest loading: expansion, and every error names file, line and field."""

import os
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
    """The message loading `body` gives, with every dataset bound to its recipe (what a
    Registry does on open; parsing alone checks params on first use)."""
    with pytest.raises(ManifestError) as info:
        load(tmp_path, body).check_recipes()
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


@pytest.mark.parametrize(("body", "kind"), [("- a\n- b\n", "a list"), ("just text\n", "text"),
                                            ("42\n", "a number")])
def test_a_manifest_that_is_not_a_mapping_says_what_it_is(tmp_path, body, kind):
    write_manifest(tmp_path, body)
    with pytest.raises(ManifestError) as info:
        load_manifests(str(tmp_path / "manifests"))
    assert str(info.value) == ("manifests/test.yaml:1: a manifest is a mapping of `sources:`, "
                               f"`datasets:`, `files:` and `jobs:` lists, not {kind}")


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


def test_params_are_checked_on_first_use_with_the_same_message(tmp_path):
    body = """
datasets:
  - name: cal-{option}
    recipe: calibration
    inputs: {images: val, labels: labels}
    variants:
      a: {params: {first: 1}}
      b:
        params: {frist: 500}
"""
    m = load(tmp_path, body)  # parsing binds no recipe: the misfit waits for its use
    assert m.get("cal-a").params.first == 1
    want = "manifests/test.yaml:16: datasets[0].variants.b.params.frist (cal-b): unknown field"
    for _ in range(2):  # not cached as a success after the first failure
        with pytest.raises(ManifestError) as info:
            m.get("cal-b").params  # noqa: B018
        assert str(info.value) == want
    assert error(tmp_path, body) == want
    # an input role the recipe lacks is part of the same check
    m = load(tmp_path, body.replace("{params: {first: 1}}", "{inputs: {lst: list.txt}}"))
    with pytest.raises(ManifestError, match=r"^manifests/test\.yaml:14: cal-a: inputs\.lst: "
                       r"recipe 'calibration' has no input 'lst' \(it takes: images, "):
        m.get("cal-a").params  # noqa: B018


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


# -- hostile manifests: nothing read outside the project, no hang, no runaway --------------

SELECT = """
datasets:
  - name: sel
    recipe: select
    inputs: {{images: val, list: {list}}}
"""


def test_a_list_outside_the_project_is_refused_without_quoting_it(tmp_path, tmp_path_factory):
    secret = tmp_path_factory.mktemp("elsewhere") / "shadow.txt"
    secret.write_text("root:$6$secret-hash:19000:0:99999:7:::\n")
    project = tmp_path / "project"
    msg = error(project, SELECT.format(list=secret))
    assert msg.startswith("manifests/test.yaml:12: datasets[0].inputs.list: file "
                          f"'{secret}' resolves outside the project ({project}")
    assert "secret-hash" not in msg
    # a symlink inside the project that leads outside is the same file
    (project / "manifests" / "lists").mkdir()
    (project / "manifests" / "lists" / "cal.txt").symlink_to(secret)
    msg = error(project, SELECT.format(list="lists/cal.txt"))
    assert "'lists/cal.txt' resolves outside the project" in msg and "secret" not in msg


def test_a_files_entry_outside_the_project_is_refused(tmp_path, tmp_path_factory):
    outside = tmp_path_factory.mktemp("elsewhere")
    (outside / "caffe_val.txt").write_text("x 1\n")
    write_manifest(tmp_path, f"files:\n  - name: labels\n    path: {outside}\n")
    with pytest.raises(ManifestError, match=r"^manifests/test\.yaml:3: files\[0\]\.path: "
                       r".* resolves outside the project"):
        load_manifests(str(tmp_path / "manifests"))


def test_the_shipped_label_data_is_allowed_from_any_project(tmp_path):
    from .conftest import LABELS

    write_manifest(tmp_path, f"files:\n  - name: labels\n    path: {LABELS}\n")
    assert load_manifests(str(tmp_path / "manifests")).get("labels").path == str(LABELS)


def test_names_with_a_trailing_newline_are_refused(tmp_path):
    msg = error(tmp_path, 'datasets:\n  - name: "sel\\n"\n    recipe: select\n'
                          '    inputs: {images: val}\n')
    assert msg.startswith("manifests/test.yaml:9: datasets[0].name: 'sel\\n' is not a valid "
                          "name")
    write_manifest(tmp_path, 'sources:\n  - {name: "v\\n", layout: imagenet-val}\n')
    with pytest.raises(ManifestError, match=r"^manifests/test\.yaml:2: sources\[0\]\.name: "
                       "String should match pattern"):
        load_manifests(str(tmp_path / "manifests"))


def test_an_unfilled_placeholder_in_a_param_is_an_error(tmp_path):
    msg = error(tmp_path, """
datasets:
  - name: wds-{n}
    recipe: webdataset
    inputs: {images: val, labels: labels}
    params: {prefix: "p-{m}"}
    matrix: {n: [1, 2]}
""")
    assert msg == ("manifests/test.yaml:13: datasets[0].params.prefix (wds-1): placeholder {m} "
                   "is not filled: no variant or matrix axis 'm' (axes: n)")
    # the recipe's own placeholder ({split}, in the field's default) stays for it to fill
    m = load(tmp_path, """
datasets:
  - name: wds
    recipe: webdataset
    inputs: {images: val, labels: labels}
    params: {prefix: "p-{split}"}
""")
    assert m.get("wds").params.prefix == "p-{split}"


@pytest.mark.parametrize("recipe, params, field, bound", [
    ("downscale", "{width: 20000, height: 32}", "width", "1024"),
    ("tfrecord", "{shards: 1000000}", "shards", "99999"),
    ("select", "{first: 1000000000000}", "first", "100000000"),
    ("recordio", "{resize: 100000}", "resize", "4096"),
])
def test_numbers_only_a_mistake_are_refused_at_their_line(tmp_path, recipe, params, field, bound):
    msg = error(tmp_path, f"""
datasets:
  - name: out
    recipe: {recipe}
    inputs: {{images: val, labels: labels}}
    params: {params}
""")
    assert msg == (f"manifests/test.yaml:13: datasets[0].params.{field} (out): Input should be "
                   f"less than or equal to {bound}")


def test_a_matrix_past_the_variant_limit_is_refused(tmp_path):
    axis = list(range(30))
    msg = error(tmp_path, f"""
datasets:
  - name: s-{{a}}-{{b}}-{{c}}
    recipe: select
    inputs: {{images: val}}
    matrix: {{a: {axis}, b: {axis}, c: {axis}}}
""")
    assert msg == ("manifests/test.yaml:13: datasets[0].matrix: more than 10,000 combinations; "
                   "split the dataset")


def test_bad_utf8_in_a_manifest_names_file_and_line(tmp_path):
    path = write_manifest(tmp_path, "")
    path.write_bytes(b"sources:\n  - name: caf\xe9\n")
    with pytest.raises(ManifestError, match=r"^manifests/test\.yaml:2: not UTF-8 text"):
        load_manifests(str(tmp_path / "manifests"))


def test_dangling_links_fifos_and_devices_are_named_never_opened(tmp_path):
    import signal

    folder = write_manifest(tmp_path, "").parent
    signal.alarm(20)  # a FIFO opened for reading would block: fail, not hang
    try:
        (folder / "gone.yaml").symlink_to(tmp_path / "nowhere.yaml")
        with pytest.raises(ManifestError, match=r"^manifests/gone\.yaml: is a dangling symlink$"):
            load_manifests(str(folder))
        (folder / "gone.yaml").unlink()
        os.mkfifo(folder / "pipe.yaml")
        with pytest.raises(ManifestError, match=r"^manifests/pipe\.yaml: is a FIFO, not a "):
            load_manifests(str(folder))
        (folder / "pipe.yaml").unlink()
        (folder / "zero.yaml").symlink_to("/dev/zero")
        with pytest.raises(ManifestError, match=r"^manifests/zero\.yaml: resolves outside"):
            load_manifests(str(folder))
        (folder / "zero.yaml").unlink()
        # a FIFO as a list input, and inside a shipped folder (tree_key would read it)
        os.mkfifo(folder / "list.fifo")
        msg = error(tmp_path, SELECT.format(list="list.fifo/"))
        assert "inputs.list: file 'list.fifo/' is a FIFO, not a regular file" in msg
        (folder / "data").mkdir()
        os.mkfifo(folder / "data" / "p")
        write_manifest(tmp_path, "files:\n  - {name: d, path: data}\n")
        with pytest.raises(ManifestError, match=r"^manifests/test\.yaml:2: files\[0\]\.path: "
                           r"'data' p in it is a FIFO"):
            load_manifests(str(folder))
    finally:
        signal.alarm(0)


def test_a_folder_as_a_list_fails_at_plan_naming_the_dataset(tmp_path):
    from dataset_registry import Registry
    from dataset_registry.errors import BadInputError

    from .conftest import make_tar

    tar = make_tar(tmp_path / "val.tar", {"ILSVRC2012_val_00000001.JPEG": b"x"})
    write_manifest(tmp_path, HEADER + SELECT.format(list="lists/"))
    (tmp_path / "manifests" / "labels.txt").write_text("x 1\n")
    (tmp_path / "manifests" / "lists").mkdir()
    reg = Registry.open(str(tmp_path))
    reg.set_source("val", str(tar))
    with pytest.raises(BadInputError, match=r"^manifests/test\.yaml:10: sel: .*/lists: is a "
                       r"folder; a list is a file of names$"):
        reg.resolve("sel")
    assert reg.resolver.status("sel") == "missing"


def test_more_shards_than_images_fails_at_plan_naming_the_dataset(tmp_path):
    import io

    from PIL import Image

    from dataset_registry import Registry
    from dataset_registry.errors import BadInputError

    from .conftest import make_train_tar, write_imagenet_manifest

    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "JPEG")
    wnid = "n01440764"
    tar = make_train_tar(tmp_path / "train.tar", {
        wnid: {f"{wnid}_{i}.JPEG": buf.getvalue() for i in range(3)}})
    write_imagenet_manifest(tmp_path, """
  - name: tf
    recipe: tfrecord
    inputs: {images: train, labels: labels}
    params: {require_all_classes: false, shards: 5}
""")
    reg = Registry.open(str(tmp_path))
    reg.set_source("train", str(tar))
    with pytest.raises(BadInputError, match=r"^manifests/test\.yaml:8: tf: shards: 5 asked "
                       r"for, but .* holds only 3 train images$"):
        reg.resolve("tf")
    assert reg.resolver.status("tf") == "missing"
