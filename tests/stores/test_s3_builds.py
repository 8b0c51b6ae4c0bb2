"""Whole builds against a real S3 endpoint (moto's server on 127.0.0.1): sources read by
byte ranges from the bucket, artifacts committed there, tasks on a Dask LocalCluster."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from dataset_registry import BadInputError, Registry
from dataset_registry.core.remote import Remote

from ..buildkit import NAMES, build_all, every_recipe
from ..conftest import concurrently, dask_address
from ..s3kit import FAKE_KEY, FAKE_SECRET, S3Endpoint


def upload_sources(bucket, synth) -> tuple[str, str]:
    fs = bucket.fs()
    fs.put(synth["imagenet-train"], f"{bucket.name}/raw/ILSVRC2012_img_train.tar")
    fs.put(synth["imagenet-val"], f"{bucket.name}/raw/ILSVRC2012_img_val.tar")
    return (f"{bucket.url}/raw/ILSVRC2012_img_train.tar",
            f"{bucket.url}/raw/ILSVRC2012_img_val.tar")


def test_every_recipe_on_s3_with_dask_gives_the_local_bytes(s3, synth_small, dask_cluster,
                                                           reference_digests, tmp_path):
    bucket = s3.bucket()
    train, val = upload_sources(bucket, synth_small)
    reg = every_recipe(tmp_path, train, val, store=f"{bucket.url}/store",
                       storage_options=s3.options())
    assert build_all(reg, executor=dask_address(dask_cluster)) == reference_digests
    assert reg.verify() == {k: [] for k in reg.store.committed()}  # re-read from the bucket
    ds = reg.built("rec")
    assert ds.uri == f"{bucket.url}/store/{ds.key[:2]}/{ds.key}"
    assert (Path(ds.path) / "train.rec").stat().st_size > 0  # a cached local copy
    assert Path(ds.path).is_relative_to(tmp_path)
    markers = [k for k in bucket.keys("store") if k.endswith("_registry.json")]
    assert len(markers) == len(NAMES)
    rows = reg.sql("SELECT DISTINCT store FROM artifacts").rows
    assert rows == [(f"{bucket.url}/store",)]
    assert reg.rebuild_catalog() == len(NAMES)  # from the markers in the bucket
    assert reg.sql("SELECT count(*) FROM artifacts").rows == [(len(NAMES),)]


def test_a_source_on_s3_reads_members_by_range(s3, synth_small, tmp_path):
    from dataset_registry.sources.index import member_sets
    from dataset_registry.sources.members import read_member, read_members, use_remote

    bucket = s3.bucket()
    _, val = upload_sources(bucket, synth_small)
    reg = every_recipe(tmp_path, synth_small["imagenet-train"], val,
                       storage_options=s3.options())
    remote_info = reg.resolver.source_info("val")
    local = Registry.open(str(tmp_path / "local"), manifests=str(tmp_path / "manifests"))
    local.set_source("val", synth_small["imagenet-val"])
    assert remote_info.fingerprint == local.resolver.source_info("val").fingerprint
    remote_set = member_sets(remote_info)["val"]
    local_set = member_sets(local.resolver.source_info("val"))["val"]
    use_remote(Remote(s3.options()))
    picked = [remote_set[i] for i in (0, 1, 2, 50, 51, 300)]
    assert picked[0].path == val
    got = [data for _, data in read_members(picked)]
    assert got == [read_member(local_set[i]) for i in (0, 1, 2, 50, 51, 300)]


def test_endpoint_stopped_mid_build_leaves_no_marker_and_resume_completes(
        synth_small, reference_digests, tmp_path):
    endpoint = S3Endpoint().start()
    try:
        bucket = endpoint.bucket()
        every_recipe(tmp_path, synth_small["imagenet-train"], synth_small["imagenet-val"])
        store = f"{bucket.url}/store"
        args = [sys.executable, "-m", "dataset_registry.cli", "--root", str(tmp_path),
                "resolve", "tiny-folders", "--store", store, "-j", "1",
                *endpoint.cli_options()]
        build = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)
        deadline = time.time() + 60
        while not [k for k in bucket.keys("store") if "/" in k] and time.time() < deadline:
            time.sleep(0.02)
        endpoint.stop()  # some files are up, the marker is not
        out, err = build.communicate(timeout=120)
        assert build.returncode == 1, err
        assert "registry: error:" in err and "could not connect" in err.lower(), err
        assert FAKE_SECRET not in out + err and FAKE_KEY not in out + err
        endpoint.start()  # the same buckets again (moto keeps them in this process)
        reg = Registry.open(str(tmp_path), store=store, storage_options=endpoint.options())
        uploaded = bucket.keys("store")
        assert uploaded and not any(k.endswith("_registry.json") for k in uploaded)
        assert reg.status("tiny-folders") == "missing"
        ds = reg.resolve("tiny-folders", jobs=1)
        assert ds.built_now and ds.digest == reference_digests["tiny-folders"]
        assert reg.verify(["tiny-folders"]) == {"tiny-folders": []}
    finally:
        endpoint.stop()


def test_two_coordinators_building_one_key_into_one_bucket(s3, synth_small, reference_digests,
                                                          tmp_path):
    bucket = s3.bucket()
    regs = [every_recipe(tmp_path / name, synth_small["imagenet-train"],
                         synth_small["imagenet-val"], store=f"{bucket.url}/store",
                         storage_options=s3.options()) for name in ("a", "b")]
    results, errors = concurrently(lambda i: regs[i].resolve("tiny", jobs=1), 2)
    assert errors == []
    assert {r.digest for r in results} == {reference_digests["tiny"]}
    assert list(regs[0].store.committed()) == [results[0].key]
    assert regs[1].verify(["tiny"]) == {"tiny": []}
    assert not [k for k in bucket.keys("store") if k.startswith(".staging")]


def test_no_credential_is_written_or_printed(s3, synth_small, tmp_path):
    bucket = s3.bucket()
    every_recipe(tmp_path, synth_small["imagenet-train"], synth_small["imagenet-val"])
    store = f"{bucket.url}/store"
    base = [sys.executable, "-m", "dataset_registry.cli", "--root", str(tmp_path)]
    runs = [subprocess.run([*base, "resolve", "cal", "rec", "--store", store, "-j", "2",
                            *s3.cli_options()], capture_output=True, text=True, timeout=300)]
    assert runs[0].returncode == 0, runs[0].stderr
    # a line per dataset, NAME STATUS LOCATION: the s3:// URI
    assert runs[0].stdout.splitlines()[0].split("\t")[2].startswith(f"{store}/")
    runs.append(subprocess.run([*base, "path", "cal", "--store", store, *s3.cli_options()],
                               capture_output=True, text=True, timeout=120))
    assert Path(runs[1].stdout.strip(), "_registry.json").exists()  # the local copy
    unreachable = [arg for option in ("endpoint_url=http://127.0.0.1:9", f"key={FAKE_KEY}",
                                      f"secret={FAKE_SECRET}")
                   for arg in ("--storage-option", option)]
    for bad in (["verify", "--store", store, *unreachable],
                ["list", "--store", f"s3://{FAKE_KEY}:{FAKE_SECRET}@bucket/x"]):
        runs.append(subprocess.run([*base, *bad], capture_output=True, text=True, timeout=300))
        assert runs[-1].returncode in (1, 2) and "registry: error:" in runs[-1].stderr
    texts = [r.stdout + r.stderr for r in runs]
    texts += [p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file()
              and p.suffix != ".parquet" and "manifests" not in p.parts]
    texts.append((tmp_path / "catalog.duckdb").read_bytes().decode("latin-1"))
    fs = bucket.fs()
    texts += [fs.cat_file(p).decode("latin-1") for p in fs.find(bucket.name)]
    for text in texts:
        assert FAKE_SECRET not in text and FAKE_KEY not in text


def test_bad_store_urls_are_user_errors(tmp_path):
    with pytest.raises(BadInputError, match="must not hold credentials") as err:
        Registry.open(str(tmp_path), store=f"s3://{FAKE_KEY}:{FAKE_SECRET}@b/x").store  # noqa: B018
    assert FAKE_SECRET not in str(err.value)
    with pytest.raises(BadInputError, match=r"hdfs://: no store is registered for this "
                                            r"scheme \(registered: abfs, az, file, gs, memory, "
                                            r"s3\)"):
        Registry.open(str(tmp_path), store="hdfs://bucket/x").store  # noqa: B018
