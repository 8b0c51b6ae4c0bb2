"""Label schemes (schemes.py): a `labels` input read by a scheme a plugin registers. An
outside scheme works like ImageNet's: registered through the plugin table, named by the
recipe's `labels_scheme` param; an unknown name is a file:line error."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from dataset_registry import BadInputError, PluginError, Registry
from dataset_registry.recipes import schemes
from dataset_registry.testing.registration import registered

from .. import parity_scheme
from ..conftest import make_tar, run_cli, write_imagenet_manifest, write_manifest
from ..parity_scheme import Parity
from ..realkit import digits, write_digit_folders


@pytest.fixture
def parity() -> Iterator[str]:
    with registered("schemes", "parity", Parity, origin="test_schemes"):
        yield "parity"


def parity_labels(folder: Path) -> Path:
    """The parity label folder of the UCI digits: odd first (label 0), then even."""
    folder.mkdir(parents=True)
    (folder / "classes.txt").write_text("odd\neven\n")
    labels = digits()[1]
    (folder / "table.txt").write_text("".join(
        f"digit-{i:04d}.png {'even' if d % 2 == 0 else 'odd'}\n" for i, d in enumerate(labels)))
    return folder


def project(root: Path, params: str, *, open_registry: bool = True) -> Registry | None:
    write_digit_folders(root / "data")
    parity_labels(root / "parity")
    write_manifest(root, textwrap.dedent(f"""
        sources:
          - {{name: digits, layout: image-folder}}
        files:
          - {{name: parity, path: ../parity}}
        datasets:
          - name: by-parity
            recipe: byclass
            inputs: {{images: digits, labels: parity}}
            params: {{{params}}}
        """))
    if not open_registry:
        return None
    reg = Registry.open(str(root))
    reg.set_source("digits", str(root / "data"))
    return reg


def test_an_outside_scheme_classes_byclass(tmp_path, parity):
    reg = project(tmp_path, "labels_scheme: parity")
    assert reg is not None
    ds = Path(reg.resolve("by-parity", jobs=2).path)
    labels = digits()[1]
    for cls, want in (("odd", 1), ("even", 0)):
        names = sorted(p.name for p in (ds / cls).iterdir())
        assert names == [f"digit-{i:04d}.png" for i, d in enumerate(labels) if d % 2 == want]
        # byte-exact copies of the digit folders' files
        first = names[0]
        assert (ds / cls / first).read_bytes() == next(
            (tmp_path / "data").glob(f"*/{first}")).read_bytes()
    import duckdb

    rows = duckdb.sql(f"select path, label, class from '{ds}/_files.parquet' "
                      "where path like '%.png' order by path").fetchall()
    assert len(rows) == 1797
    assert {(p.split("/")[0], label, c) for p, label, c in rows} == {
        ("even", 1, "even"), ("odd", 0, "odd")}  # the scheme's order: odd is label 0


def test_an_outside_scheme_picks_downscales_classes(tmp_path, parity):
    import numpy as np

    project(tmp_path, "labels_scheme: parity")
    path = tmp_path / "manifests" / "test.yaml"
    path.write_text(path.read_text() + (
        "  - name: small-even\n"
        "    recipe: downscale\n"
        "    inputs: {train: digits, labels: parity}\n"
        "    params: {labels_scheme: parity, width: 4, height: 4, classes: [even]}\n"))
    reg = Registry.open(str(tmp_path))
    ds = Path(reg.resolve("small-even", jobs=1).path)
    # the scheme's label of `even` is 1 (odd comes first); the subset's is 0
    assert (ds / "classes.txt").read_text() == "even\t1\teven\n"
    even = [i for i, d in enumerate(digits()[1]) if d % 2 == 0]
    assert (ds / "train" / "members.txt").read_text().count("\n") == len(even)
    assert np.load(ds / "train" / "labels.npy").tolist() == [0] * len(even)
    assert np.load(ds / "train" / "images.npy").shape == (len(even), 4, 4, 3)


def test_an_outside_scheme_that_cannot_class_an_image_names_it(tmp_path, parity):
    reg = project(tmp_path, "labels_scheme: parity")
    assert reg is not None
    table = tmp_path / "parity" / "table.txt"
    table.write_text("".join(table.read_text().splitlines(keepends=True)[1:]))  # no 0000
    with pytest.raises(BadInputError, match=r"digit-0000\.png is not in .*table\.txt"):
        reg.resolve("by-parity")


def test_an_unknown_scheme_is_a_file_line_error_listing_the_registered(tmp_path):
    project(tmp_path, "labels_scheme: nope", open_registry=False)
    out = run_cli("list", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("registry: error: manifests/test.yaml:10: datasets[0].params."
                                 "labels_scheme (by-parity): "), out.stderr
    assert "unknown label scheme 'nope' (registered: imagenet)" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_scheme_without_a_labels_input_is_refused(tmp_path):
    write_manifest(tmp_path, textwrap.dedent("""
        sources:
          - {name: digits, layout: image-folder}
        datasets:
          - name: shards
            recipe: webdataset
            inputs: {images: digits}
            params: {labels_scheme: imagenet}
        """))
    out = run_cli("list", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("registry: error: manifests/test.yaml:"), out.stderr
    assert "'imagenet' names the scheme of the labels input, and the dataset has none" \
        in out.stderr


def test_a_project_plugin_scheme_builds_and_is_listed(tmp_path):
    """A scheme from a project's registry.toml: the CLI builds with it, and the unknown-
    name error lists it beside ImageNet's."""
    (tmp_path / "my_schemes.py").write_text(
        Path(parity_scheme.__file__).read_text() + '\n\nfrom dataset_registry import plugins\n\n'
        'plugins.register("schemes", "parity", "my_schemes:Parity")\n')
    (tmp_path / "registry.toml").write_text('plugins = ["my_schemes"]\n')
    project(tmp_path, "labels_scheme: parity")
    out = run_cli("resolve", "by-parity", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    project_yaml = tmp_path / "manifests" / "test.yaml"
    project_yaml.write_text(project_yaml.read_text().replace("labels_scheme: parity",
                                                             "labels_scheme: odd-even"))
    out = run_cli("list", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert "unknown label scheme 'odd-even' (registered: imagenet, parity)" in out.stderr


def test_the_default_scheme_keys_as_before(tmp_path):
    """`labels_scheme: imagenet` named or left out: one key (the param came later)."""
    write_imagenet_manifest(tmp_path, textwrap.dedent("""
        - {name: a, recipe: byclass, inputs: {images: val, labels: labels}, params: {split: val}}
        - name: b
          recipe: byclass
          inputs: {images: val, labels: labels}
          params: {split: val, labels_scheme: imagenet}
        - name: c
          recipe: downscale
          inputs: {val: val, labels: labels}
          params: {width: 8, height: 8}
        - name: d
          recipe: downscale
          inputs: {val: val, labels: labels}
          params: {width: 8, height: 8, labels_scheme: imagenet}
        """))
    reg = Registry.open(str(tmp_path))
    reg.set_source("val", str(make_tar(tmp_path / "val.tar", {
        "ILSVRC2012_val_00000001.JPEG": b"not read: keys need no image"})))
    assert reg.resolver.key("a") == reg.resolver.key("b")
    assert reg.resolver.key("c") == reg.resolver.key("d")
    assert "labels_scheme" not in reg.resolver.manifests.get("a").params.keyed()


def test_build_refuses_a_split_the_scheme_cannot_class(tmp_path):
    scheme = schemes.build("imagenet", str(tmp_path))
    assert scheme.splits == ("train", "val")
    with pytest.raises(BadInputError, match=r"split 'test': with the labels input in scheme "
                       r"'imagenet' the split is train or val"):
        schemes.build("imagenet", str(tmp_path), "test")
    with pytest.raises(PluginError, match=r"unknown scheme 'nope' \(registered: .*imagenet"):
        schemes.build("nope", str(tmp_path))
