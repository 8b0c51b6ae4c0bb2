"""A team shares one bucket, end to end through the CLI (issue 17's "What it must show").

Root A holds the raw data (the synthetic ImageNet), builds the shards the shipped
`smoke-resnet` training manifest reads, locks and pushes them to a bucket on moto's S3
server. Root B is a teammate's clone: the same manifests, A's registry.lock, the bucket as
a cache in its registry.toml, and no source set. Everything a consumer does works there;
what nobody built fails clearly until its source is set.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from dataset_registry import Registry
from dataset_registry.engine.lockfile import LOCK, load

from .conftest import copy_manifests, run_cli
from .engine.test_substituters import files_of
from .s3kit import FAKE_KEY, FAKE_SECRET, S3Endpoint

SHARDS = ("smoke-webdataset-train", "smoke-webdataset-val")  # what smoke-resnet reads
NEVER_BUILT = "imagenet2012-val-min"  # from imagenet2012-val, which B has not set
MANY_FILES = NEVER_BUILT  # A builds it for the fault test


def tree(root: Path) -> dict[str, int]:
    """Every file under `root` (a store) by relative path and size, staging included; not the
    empty files `.locks/` holds for flock, which stay once a key was locked."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*")
            if p.is_file() and p.relative_to(root).parts[0] != ".locks"}


def storage_env(endpoint: S3Endpoint) -> dict[str, str]:
    """The endpoint and its fake credentials as a teammate's shell would export them."""
    return {"DATASET_REGISTRY_STORAGE_OPTIONS": ",".join(
        f"{name}={value}" for name, value in endpoint.options().items())}


def make_team(tmp_path: Path, synth: dict[str, str], endpoint: S3Endpoint,
              names: tuple[str, ...] = SHARDS) -> dict:
    """A builds `names` from the raw data, locks, pushes them to a bucket; B gets the manifests,
    A's lock and the bucket as a cache in registry.toml, nothing else."""
    a, b = tmp_path / "a", tmp_path / "b"
    env = storage_env(endpoint)
    copy_manifests(a)
    for source, key in (("imagenet2012-train", "imagenet-train"),
                        ("imagenet2012-val", "imagenet-val")):
        proc = run_cli("source", "set", source, synth[key], cwd=a, env=env)
        assert proc.returncode == 0, proc.stderr
    built = {name: Registry.open(str(a)).resolve(name, jobs=1) for name in names}
    proc = run_cli("lock", cwd=a, env=env)
    assert proc.returncode == 0, proc.stderr
    cache = f"{endpoint.bucket().url}/team"
    proc = run_cli("push", *names, "--to", cache, cwd=a, env=env)
    assert proc.returncode == 0, proc.stderr

    b.mkdir()
    shutil.copytree(a / "manifests", b / "manifests")
    shutil.copy(a / LOCK, b / LOCK)
    (b / "registry.toml").write_text(f'caches = ["{cache}"]\n')
    return {"a": a, "b": b, "cache": cache, "built": built, "env": env,
            "reg_a": Registry.open(str(a))}


@pytest.fixture
def team(tmp_path: Path, synth_small: dict[str, str], s3: S3Endpoint) -> dict:
    return make_team(tmp_path, synth_small, s3)


def in_b(team: dict, *args: str):
    return run_cli(*args, cwd=team["b"], env=team["env"])


def test_b_lists_shows_pulls_traces_queries_and_renders_without_the_raw_data(team):
    reg_a, built, b = team["reg_a"], team["built"], team["b"]
    keys = {name: reg_a.key(name) for name in SHARDS}
    assert not (b / ".registry-state" / "sources.json").exists()

    listed = in_b(team, "list", "--tags", "smoke")
    assert listed.returncode == 0, listed.stderr
    rows = {line.split("\t")[0]: line.split("\t")[3] for line in listed.stdout.splitlines()[1:]}
    # not in B's store yet: in the team cache, where pull and resolve take it from
    assert rows == dict.fromkeys(SHARDS, f"in cache {team['cache']}")

    for name in SHARDS:
        show = in_b(team, "show", name)
        assert show.returncode == 0, show.stderr
        info = json.loads(show.stdout)
        assert info["key"] == keys[name] and info["status"] == f"in cache {team['cache']}"

    pull = in_b(team, "pull", *SHARDS)  # from the caches in registry.toml
    assert pull.returncode == 0, pull.stderr
    for name in SHARDS:
        assert f"{name}: pulled from {team['cache']} (key {keys[name]})" in pull.stdout
    again = in_b(team, "pull", *SHARDS)
    assert again.returncode == 0 and again.stdout.count("already in") == 2, again.stdout

    reg_b = Registry.open(str(b))
    for name in SHARDS:
        path = in_b(team, "path", name)
        assert path.returncode == 0, path.stderr
        folder = path.stdout.strip()
        assert folder.startswith(str(b)) and os.path.isdir(folder)  # B's own store
        assert files_of(folder) == files_of(built[name].path)  # byte for byte, marker too
        resolved = reg_b.resolve(name)
        assert resolved.path == folder and not resolved.built_now
        assert resolved.key == keys[name]
    assert reg_b.verify(list(SHARDS)) == {name: [] for name in SHARDS}

    lineage = in_b(team, "lineage", "smoke-webdataset-train")
    assert lineage.returncode == 0, lineage.stderr
    assert f"key {keys['smoke-webdataset-train'][:16]}" in lineage.stdout
    assert "not set here; key from registry.lock" in lineage.stdout

    sql = in_b(team, "sql", "SELECT name, key FROM artifacts ORDER BY name", "--format", "csv")
    assert sql.returncode == 0, sql.stderr
    assert sql.stdout.splitlines()[1:] == [f"{name},{keys[name]}" for name in SHARDS]

    render = in_b(team, "job", "render", "smoke-resnet")
    assert render.returncode == 0, render.stderr
    spec = yaml.safe_load(render.stdout)
    labels = spec["metadata"]["labels"]
    assert labels["dataset-registry.io/train-key"] == keys["smoke-webdataset-train"]
    assert labels["dataset-registry.io/val-key"] == keys["smoke-webdataset-val"]
    command = spec["spec"]["template"]["spec"]["containers"][0]["command"]
    key = keys["smoke-webdataset-train"]
    assert f"--train=/pvc/registry/{key[:2]}/{key}" in command
    # B's render is A's, but for the run id
    ours = reg_a.render_job("smoke-resnet").spec
    assert _without_run_id(spec) == _without_run_id(ours)

    assert not (b / ".registry-state" / "sources.json").exists()  # still no source set
    assert load(str(b / LOCK)) == load(str(team["a"] / LOCK))
    for proc in (listed, pull, render):
        assert FAKE_SECRET not in proc.stdout + proc.stderr
        assert FAKE_KEY not in proc.stdout + proc.stderr


def _without_run_id(spec: dict) -> dict:
    spec = json.loads(json.dumps(spec))
    del spec["metadata"]["labels"]["dataset-registry.io/run"]
    return spec


def test_b_resolve_of_what_a_never_built_fails_clearly_then_builds_once_set(team, synth_small):
    b = team["b"]
    store = b / "registry"
    before, lock_before = tree(store), (b / LOCK).read_bytes()
    for args in (("resolve", NEVER_BUILT), ("pull", NEVER_BUILT), ("path", NEVER_BUILT)):
        proc = in_b(team, *args)
        assert proc.returncode == 2, (args, proc.stderr)
        [line] = proc.stderr.splitlines()
        assert NEVER_BUILT in line, line
        if args[0] == "pull":
            assert f"not in {team['cache']}" in line and "pull never builds" in line
        else:
            assert "source imagenet2012-val" in line and "not set on this machine" in line
            assert "registry source set imagenet2012-val PATH" in line
        assert "Traceback" not in proc.stderr
    assert tree(store) == before  # nothing built, staged, pulled
    assert (b / LOCK).read_bytes() == lock_before

    proc = in_b(team, "source", "set", "imagenet2012-val", synth_small["imagenet-val"])
    assert proc.returncode == 0, proc.stderr
    proc = in_b(team, "resolve", NEVER_BUILT)
    assert proc.returncode == 0, proc.stderr
    key = team["reg_a"].key(NEVER_BUILT)
    assert proc.stdout.strip().endswith(key)
    assert load(str(b / LOCK)).datasets[NEVER_BUILT].key == key


def test_endpoint_stopped_mid_pull_in_b_leaves_nothing_and_the_retry_completes(
        tmp_path, synth_small):
    """test_substituters.py stops a pull whose key B computes from its own sources; here the
    key comes from the lock alone, through the cache in registry.toml."""
    endpoint = S3Endpoint().start()  # its own: the session's server cannot be stopped
    try:
        # 500 images, one file each: a transfer long enough to stop in the middle
        team = make_team(tmp_path, synth_small, endpoint, names=(MANY_FILES,))
        built = team["built"][MANY_FILES]
        b, store = team["b"], team["b"] / "registry"
        pull = subprocess.Popen([sys.executable, "-m", "dataset_registry.cli", "pull", MANY_FILES],
                                cwd=b, env={**os.environ, **team["env"]}, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        staging = store / ".staging" / f"{built.key}.transfer"
        deadline = time.time() + 60
        while time.time() < deadline and not (staging.is_dir() and
                                              len(files_of(str(staging))) > 20):
            time.sleep(0.005)
        endpoint.stop()  # some shards are here, the marker is not
        out, err = pull.communicate(timeout=120)
        assert pull.returncode == 1, out + err
        assert err.startswith("registry: error: downloading") and len(err.splitlines()) == 1
        assert FAKE_SECRET not in out + err and FAKE_KEY not in out + err
        assert not (store / built.key[:2] / built.key).exists()  # nothing a reader sees
        listed = in_b(team, "list", "--tags", "min")
        assert f"{MANY_FILES}\t" in listed.stdout and "\tbuilt" not in listed.stdout
        # the cache it could not read, said once (and asked once, not for every dataset)
        assert listed.stderr.count(f"warning: cache {team['cache']} left out of the "
                                   "statuses: ") == 1, listed.stderr

        endpoint.start()
        retry = in_b(team, "pull", MANY_FILES)
        assert retry.returncode == 0, retry.stderr
        kept = int(retry.stdout.split(" already there kept")[0].rsplit(", ", 1)[1])
        assert kept > 0, retry.stdout  # resumed, not started over
        path = in_b(team, "path", MANY_FILES)
        assert path.returncode == 0, path.stderr
        assert files_of(path.stdout.strip()) == files_of(built.path)
        assert not staging.exists()
    finally:
        endpoint.stop()
