"""ImageNet's plugin commands through the `registry` CLI: synth, demo (eval's run is in
tests/recipes/test_downscale.py, on a built subset)."""

import os
import re

import pytest

from ...conftest import copy_manifests, run_cli, write_manifest


def test_synth_same_arguments_same_bytes_any_jobs(tmp_path):
    args = ["synth", "imagenet", "--val-images", "300", "--train-classes", "2",
            "--train-per-class", "3", "--size", "24x16"]
    for jobs in ("1", "2"):
        out = run_cli(*args, "--jobs", jobs, str(tmp_path / jobs), cwd=tmp_path)
        assert out.returncode == 0, out.stderr
    for name in ("ILSVRC2012_img_val.tar", "ILSVRC2012_img_train.tar"):
        assert (tmp_path / "1" / name).read_bytes() == (tmp_path / "2" / name).read_bytes()


def test_synth_prints_the_layouts_it_wrote_and_no_kaggle_path_with_no_kaggle(tmp_path):
    args = ["synth", "imagenet", "--val-images", "20", "--train-classes", "1",
            "--train-per-class", "1", "--size", "16x12", "--jobs", "1"]
    for flag, kaggle in (["--no-kaggle"], False), ([], True):
        out_dir = tmp_path / ("with" if kaggle else "without")
        out = run_cli(*args, *flag, str(out_dir), cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        expected = [f"imagenet-val\t{out_dir}/ILSVRC2012_img_val.tar",
                    f"imagenet-train\t{out_dir}/ILSVRC2012_img_train.tar"]
        expected += [f"kaggle-cls-loc\t{out_dir}/kaggle"] if kaggle else []
        assert lines[:-1] == expected and lines[-1].startswith("SYNTHETIC data")
        assert (out_dir / "kaggle").is_dir() == kaggle


@pytest.mark.parametrize("args, message", [
    (["--size", "64by48"], "--size '64by48': expected WIDTHxHEIGHT, e.g. 64x48"),
    (["--val-images", "0"], "--val-images must be between 1 and 50000"),
    (["--val-images", "50001"], "--val-images must be between 1 and 50000"),
    (["--wnids", "n01440764,n99999999"], "synth: unknown WNIDs n99999999"),
])
def test_synth_refuses_bad_arguments_and_writes_nothing(tmp_path, args, message):
    out = run_cli("synth", "imagenet", "out", *args, cwd=tmp_path)
    assert (out.returncode, out.stderr) == (2, f"registry: error: {message}\n")
    assert not (tmp_path / "out").exists()


def test_demo_synthesizes_resolves_and_queries_then_reuses(tmp_path):
    copy_manifests(tmp_path)
    first = run_cli("demo", "--val-images", "600", "--jobs", "1", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    text = first.stdout
    assert "1. synthesizing 600 ImageNet-shaped val images into" in text
    assert re.search(r"2\. source imagenet2012-val -> .*ILSVRC2012_img_val.tar\n   600 images",
                     text)
    # 500 images and val_map.txt
    assert re.search(r"imagenet-min-calibration-all\.500 +501 files  key [0-9a-f]{12}  built in",
                     text)
    assert "imagenet-calibration-first.500" not in text  # needs the full 50,000
    assert "4. provenance, in SQL" in text and "ILSVRC2012_val_00000293.JPEG" in text
    assert text.endswith("Next: registry list; registry lineage "
                         "imagenet-min-calibration-all.500; registry verify\n")
    again = run_cli("demo", "--val-images", "600", "--jobs", "1", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "1. synthetic val set already at" in again.stdout
    assert "already built in" in again.stdout


def test_demo_outside_a_checkout_writes_the_example_project_first_and_runs_there(tmp_path):
    anywhere = tmp_path / "anywhere"
    anywhere.mkdir()
    project = anywhere / "registry-demo"
    first = run_cli("demo", "--val-images", "600", "--jobs", "1", cwd=anywhere)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith(f"0. no manifests folder in {anywhere}: wrote the ImageNet "
                                   f"example project into {project} (registry init --example "
                                   "imagenet); running there\n1. synthesizing 600")
    assert re.search(r"imagenet-min-calibration-all\.500 +501 files  key [0-9a-f]{12}  built in",
                     first.stdout)
    assert first.stdout.endswith(f"Next: cd {project}; registry list; registry lineage "
                                 "imagenet-min-calibration-all.500; registry verify\n")
    assert os.listdir(anywhere) == ["registry-demo"]  # the store, catalog, state: in there
    assert (project / "manifests" / "imagenet" / "calibration.yaml").exists()
    listed = run_cli("list", "--tags", "min", cwd=project)
    assert "imagenet-min-calibration-all.500\tdataset\tcalibration\tbuilt" in listed.stdout
    again = run_cli("demo", "--val-images", "600", "--jobs", "1", cwd=anywhere)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"0. no manifests folder in {anywhere}: running in the "
                                   f"example project {project}\n1. synthetic val set already")
    assert "already built in" in again.stdout


def test_demo_uses_the_manifests_named_and_checks_them_before_synthesizing(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    missing = tmp_path / "nowhere"
    out = run_cli("demo", "--manifests", str(missing), "--val-images", "600", cwd=work)
    assert (out.returncode, out.stdout) == (2, "")
    assert out.stderr == f"registry: error: demo: manifests folder {missing} does not exist\n"
    other = tmp_path / "other"
    write_manifest(other, "sources:\n  - {name: mine, layout: image-folder}\n")
    out = run_cli("demo", "--manifests", str(other / "manifests"), "--val-images", "600",
                  cwd=work)
    assert (out.returncode, out.stdout) == (2, "")
    assert out.stderr == (f"registry: error: demo: the manifests in {other / 'manifests'} do "
                          "not define imagenet2012-val, imagenet-min-calibration-all.500; the "
                          "demo needs the ImageNet example's (registry init --example "
                          "imagenet)\n")
    out = run_cli("demo", "--val-images", "499", cwd=work)  # the min set takes the first 500
    assert out.returncode == 2 and "--val-images must be between 500 and 50000" in out.stderr
    assert os.listdir(work) == []  # nothing synthesized, no example written
    elsewhere = copy_manifests(tmp_path / "elsewhere")
    out = run_cli("demo", "--manifests", str(elsewhere), "--val-images", "600", "--jobs", "1",
                  cwd=work)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("1. synthesizing 600")  # no example project: these manifests
    assert sorted(os.listdir(work)) == [".registry-state", "catalog.duckdb",
                                        "catalog.duckdb.lock", "registry"]
