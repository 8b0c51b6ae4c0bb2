"""Keys, build-only-what-is-missing, and determinism across worker counts."""

import os
import shutil
from pathlib import Path

import pytest

from dataset_registry import Registry, SourceError
from dataset_registry.recipes.select import Select

from .conftest import copy_manifests

CAL = "imagenet-min-calibration-first.5"


@pytest.fixture
def private(tmp_path, synth_small) -> Registry:
    """Shipped manifests in a private copy we may edit, small synthetic val set as a tar."""
    copy_manifests(tmp_path)
    shutil.copy(synth_small["imagenet-val"], tmp_path / "val.tar")
    reg = Registry.open(str(tmp_path))
    reg.set_source("imagenet2012-val", str(tmp_path / "val.tar"))
    reg.set_source("imagenet2012-train", synth_small["imagenet-train"])
    return reg


def all_keys(root: Path) -> dict[str, str]:
    reg = Registry.open(str(root))
    return {d.name: reg.key(d.name) for d in reg.manifests.datasets()}


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_descriptions_comments_and_names_never_enter_keys(private, tmp_path):
    before = all_keys(tmp_path)
    cal = tmp_path / "manifests" / "imagenet" / "calibration.yaml"
    edit(cal, 'description: the "min" val set of CK/CM', 'description: edited')
    edit(cal, "# MLPerf / CK ImageNet", "# An edited comment on MLPerf / CK ImageNet")
    assert all_keys(tmp_path) == before
    edit(cal, "name: imagenet2012-val-min", "name: imagenet2012-val-small")
    edit(cal, "images: imagenet2012-val-min,", "images: imagenet2012-val-small,")
    renamed = all_keys(tmp_path)
    assert renamed.pop("imagenet2012-val-small") == before.pop("imagenet2012-val-min")
    assert renamed == before


def test_a_param_changes_exactly_the_keys_downstream(private, tmp_path):
    before = all_keys(tmp_path)
    edit(tmp_path / "manifests" / "imagenet" / "calibration.yaml",
         "params: {first: 500}\n    tags: [imagenet, val, min]",
         "params: {first: 499}\n    tags: [imagenet, val, min]")
    after = all_keys(tmp_path)
    changed = {n for n in before if before[n] != after[n]}
    assert changed == {"imagenet2012-val-min"} | {n for n in before if "-min-" in n}
    assert len(changed) == 6 and sum("tiny" in n for n in before) == 22  # tiny ones stayed


def test_one_byte_of_a_list_changes_exactly_its_readers(private, tmp_path):
    before = all_keys(tmp_path)
    lst = tmp_path / "manifests" / "imagenet" / "lists" / "cal_image_list_first_5.txt"
    lst.write_text(lst.read_text().replace("00000005", "00000006"))
    after = all_keys(tmp_path)
    assert {n for n in before if before[n] != after[n]} == {
        "imagenet-calibration-first.5", "imagenet-min-calibration-first.5"}


def test_moving_the_source_tar_keeps_every_key(private, tmp_path):
    before = all_keys(tmp_path)
    os.makedirs(tmp_path / "elsewhere")
    os.rename(tmp_path / "val.tar", tmp_path / "elsewhere" / "renamed.tar")
    reg = Registry.open(str(tmp_path))
    with pytest.raises(SourceError, match="does not exist"):
        reg.key("imagenet2012-val")
    reg.set_source("imagenet2012-val", str(tmp_path / "elsewhere" / "renamed.tar"))
    assert all_keys(tmp_path) == before


def test_unset_source_names_layout_and_command(tmp_path):
    copy_manifests(tmp_path)
    reg = Registry.open(str(tmp_path))
    with pytest.raises(SourceError) as info:
        reg.resolve(CAL)
    msg = str(info.value)
    assert "source imagenet2012-val is not set" in msg
    assert "ILSVRC2012_val_%08d.JPEG" in msg and "layout imagenet-val" in msg
    assert "registry source set imagenet2012-val PATH" in msg


def test_second_resolve_runs_no_recipe_code(private, monkeypatch):
    first = private.resolve(CAL, jobs=1)
    assert first.built_now

    def boom(*args, **kwargs):
        raise AssertionError("recipe code ran for a built dataset")

    monkeypatch.setattr(Select, "plan", boom)
    monkeypatch.setattr(Select, "run", boom)
    again = Registry.open(private.root).resolve(CAL, jobs=1)
    assert not again.built_now
    assert (again.key, again.path, again.digest) == (first.key, first.path, first.digest)


def test_one_worker_and_two_workers_give_the_same_bytes(tmp_path, synth_small):
    results = []
    for jobs in (1, 2):
        root = tmp_path / f"jobs{jobs}"
        copy_manifests(root)
        reg = Registry.open(str(root))
        reg.set_source("imagenet2012-val", synth_small["imagenet-val"])
        ds = reg.resolve("imagenet2012-val-min", jobs=jobs)
        files = {p.name: p.read_bytes() for p in Path(ds.path).iterdir()
                 if p.name != "_registry.json"}
        results.append((ds.key, ds.digest, files))
    assert results[0] == results[1]


def test_dry_run_lists_what_is_missing_in_order(private):
    todo = [n.name for n in private.resolver.missing([CAL])]
    assert todo == ["imagenet2012-val-min", CAL]
    private.resolve("imagenet2012-val-min")
    assert [n.name for n in private.resolver.missing([CAL])] == [CAL]
