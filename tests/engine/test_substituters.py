"""Artifacts moved between stores by key (substituters.py, `registry push/pull`, caches in
`resolve`), against moto's S3 server: local -> S3, S3 -> local, S3 -> S3."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dataset_registry import Registry
from dataset_registry.cli import main
from dataset_registry.engine.build import Resolver
from dataset_registry.engine.substituters import CACHES_ENV, transfer
from dataset_registry.stores import open_store

from ..buildkit import every_recipe
from ..s3kit import FAKE_KEY, FAKE_SECRET, S3Endpoint


def files_of(folder: str) -> dict[str, bytes]:
    """Every file under `folder` by relative path (the artifact's bytes, marker included)."""
    out = {}
    for dirpath, _, names in os.walk(folder):
        for name in names:
            full = os.path.join(dirpath, name)
            out[os.path.relpath(full, folder)] = Path(full).read_bytes()
    return out


def teammates(tmp_path: Path, synth: dict[str, str], options: dict) -> tuple[Registry, Registry]:
    """Two registries with the same manifests and sources, each its own local store."""
    regs = []
    for who in ("a", "b"):
        regs.append(every_recipe(tmp_path / who, synth["imagenet-train"], synth["imagenet-val"],
                                 storage_options=options))
    return regs[0], regs[1]


def cli(reg: Registry, *args: str, options: list[str]) -> list[str]:
    return ["--root", reg.root, *args, *options]


def test_push_to_s3_then_pull_gives_the_same_bytes(s3, synth_small, tmp_path, capsys):
    a, b = teammates(tmp_path, synth_small, s3.options())
    cache = f"{s3.bucket().url}/team"
    built = a.resolve("val-first", jobs=1)
    assert main(cli(a, "push", "val-first", "--to", cache, options=s3.cli_options())) == 0
    out = capsys.readouterr().out
    assert f"val-first: pushed to {cache} (key {built.key}): " in out, out
    assert f": {built.marker.files} files, {built.marker.bytes} bytes copied, each xxh3 " \
        "verified" in out
    # pushed again: skipped, said so
    assert main(cli(a, "push", "val-first", "--to", cache, options=s3.cli_options())) == 0
    assert "already in" in capsys.readouterr().out

    assert b.status("val-first") == "missing"
    assert main(cli(b, "pull", "val-first", "--from", cache, options=s3.cli_options())) == 0
    out = capsys.readouterr().out
    assert f"val-first: pulled from {cache} (key {built.key})" in out, out
    b = Registry.open(b.root, storage_options=s3.options())
    pulled = b.built("val-first")
    assert files_of(pulled.path) == files_of(built.path)  # marker included, byte for byte
    assert b.verify(["val-first"]) == {"val-first": []}
    mode = os.stat(os.path.join(pulled.path, "_files.parquet")).st_mode
    assert not mode & stat.S_IWUSR  # sealed as a committed build is
    assert b.sql("SELECT name FROM artifacts").rows == [("val-first",)]
    assert not os.listdir(os.path.join(b.store.root, ".staging"))


def test_s3_to_s3_and_a_resumed_push_keeps_what_is_there(s3, synth_small, tmp_path):
    a, _ = teammates(tmp_path, synth_small, s3.options())
    built = a.resolve("val-first", jobs=1)
    first, second = s3.bucket(), s3.bucket()
    one = a.open_store(f"{first.url}/store")
    two = a.open_store(f"{second.url}/store")
    assert transfer(a.store, one, built.key).copied == built.marker.files
    done = transfer(one, two, built.key)
    assert (done.copied, done.kept, done.present) == (built.marker.files, 0, False)
    fs = second.fs()
    prefix = f"{second.name}/store/{built.key[:2]}/{built.key}"
    assert fs.cat(f"{prefix}/_registry.json") == Path(built.path, "_registry.json").read_bytes()
    assert two.verify(built.key) == []

    # a stopped upload: no marker, one file missing, one half-written
    files = sorted(p for p in fs.find(prefix) if not p.endswith(("_registry.json",
                                                                 "_files.parquet")))
    fs.rm_file(f"{prefix}/_registry.json")
    fs.rm_file(files[0])
    fs.pipe_file(files[1], b"half")
    assert two.marker(built.key) is None
    again = transfer(one, two, built.key)
    assert (again.copied, again.kept) == (2, built.marker.files - 2)
    assert two.verify(built.key) == []
    assert transfer(one, two, built.key).present


def test_pull_of_what_no_cache_holds_fails_naming_it_and_changes_nothing(s3, synth_small,
                                                                         tmp_path, capsys):
    a, b = teammates(tmp_path, synth_small, s3.options())
    cache = f"{s3.bucket().url}/team"
    a.resolve("val-first", jobs=1)
    a.push(["val-first"], cache)
    key = b.key("cal")
    code = main(cli(b, "pull", "val-first", "cal", "--cache", cache,
                    options=s3.cli_options()))
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.strip() == (f"registry: error: pull: not in {cache}: cal (key {key}); pull "
                           "never builds (build with: registry resolve NAME; nothing was "
                           "pulled)")
    assert b.status("val-first") == "missing" and b.status("cal") == "missing"
    assert not os.path.exists(b.store.root) or not list(b.store.committed())

    code = main(cli(b, "pull", "cal", options=s3.cli_options()))  # no cache named anywhere
    assert code == 2
    assert "pull: no cache to pull from" in capsys.readouterr().err


def test_a_damaged_cache_artifact_is_not_published(s3, synth_small, tmp_path, capsys):
    a, b = teammates(tmp_path, synth_small, s3.options())
    bucket = s3.bucket()
    built = a.resolve("val-first", jobs=1)
    a.push(["val-first"], f"{bucket.url}/team")
    fs = bucket.fs()
    prefix = f"{bucket.name}/team/{built.key[:2]}/{built.key}"
    victim = sorted(p for p in fs.find(prefix) if p.endswith(".JPEG"))[0]
    data = fs.cat(victim)
    fs.pipe_file(victim, bytes([data[0] ^ 1]) + data[1:])  # same size, other bytes
    code = main(cli(b, "pull", "val-first", "--from", f"{bucket.url}/team",
                    options=s3.cli_options()))
    err = capsys.readouterr().err
    assert code == 1, err
    assert f"{victim.split('/', 1)[1]}: content differs" in err
    assert "the copy is not published" in err
    assert b.status("val-first") == "missing"


def test_resolve_pulls_from_a_cache_instead_of_building(s3, synth_small, tmp_path,
                                                       monkeypatch, capsys):
    a, b = teammates(tmp_path, synth_small, s3.options())
    cache = f"{s3.bucket().url}/team"
    built = a.resolve("cal", jobs=1)
    a.push(["cal"], cache)  # not its input val-first: a cached dataset needs no inputs
    builds = []
    real_build = Resolver._build

    def counted(self, node, *args, **kwargs):
        builds.append(node.name)
        return real_build(self, node, *args, **kwargs)

    monkeypatch.setattr(Resolver, "_build", counted)
    monkeypatch.setenv(CACHES_ENV, f"{s3.bucket().url}/empty,{cache}")  # in order
    code = main(cli(b, "resolve", "cal", options=s3.cli_options()))
    err = capsys.readouterr().err
    assert code == 0, err
    assert builds == []
    assert f"cal: pulled from cache {cache} (not built here)" in err
    b = Registry.open(b.root, storage_options=s3.options())
    assert files_of(b.built("cal").path) == files_of(built.path)
    assert b.status("val-first") == "missing"  # never needed, never pulled nor built
    # with no cache, a missing dataset is built as before
    monkeypatch.delenv(CACHES_ENV)
    assert b.resolve("val-first", jobs=1).built_now and builds == ["val-first"]


def test_caches_in_registry_toml_and_a_bad_entry(s3, synth_small, tmp_path, capsys):
    a, b = teammates(tmp_path, synth_small, s3.options())
    cache = f"{s3.bucket().url}/team"
    a.resolve("val-first", jobs=1)
    a.push(["val-first"], cache)
    config = Path(b.root, "registry.toml")
    config.write_text(f'caches = ["{cache}"]\n')
    resolved = Registry.open(b.root, storage_options=s3.options()).resolve("val-first", jobs=1)
    assert resolved.pulled == {"val-first": cache} and not resolved.built_now
    config.write_text(f'caches = "{cache}"\n')
    code = main(cli(b, "resolve", "cal", options=s3.cli_options()))
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == (f"registry: error: {config}: caches must be a list of store URLs, "
                           'e.g. caches = ["s3://team/registry"]')
    assert Registry.open(b.root).status("cal") == "missing"


def test_endpoint_stopped_mid_pull_leaves_nothing_and_the_retry_completes(synth_small,
                                                                          tmp_path):
    endpoint = S3Endpoint().start()
    try:
        a, b = teammates(tmp_path, synth_small, endpoint.options())
        cache = f"{endpoint.bucket().url}/team"
        built = a.resolve("tiny-folders", jobs=1)  # hundreds of small files
        a.push(["tiny-folders"], cache)
        args = [sys.executable, "-m", "dataset_registry.cli", "--root", b.root, "pull",
                "tiny-folders", "--from", cache, *endpoint.cli_options()]
        pull = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        staging = Path(b.store.root, ".staging", f"{built.key}.transfer")
        deadline = time.time() + 60
        while time.time() < deadline and not (staging.is_dir() and
                                              len(files_of(str(staging))) > 20):
            time.sleep(0.005)
        endpoint.stop()  # some files are here, the marker is not
        out, err = pull.communicate(timeout=120)
        assert pull.returncode == 1, out + err
        assert err.startswith("registry: error: downloading") and len(err.splitlines()) == 1
        assert "could not connect" in err.lower(), err
        assert FAKE_SECRET not in out + err and FAKE_KEY not in out + err
        assert b.status("tiny-folders") == "missing"
        assert not Path(b.store.root, built.key[:2], built.key).exists()
        endpoint.start()
        retry = subprocess.run(args, capture_output=True, text=True, timeout=120)
        assert retry.returncode == 0, retry.stderr
        kept = int(retry.stdout.split(" already there kept")[0].rsplit(", ", 1)[1])
        assert kept > 0, retry.stdout  # resumed, not started over
        b = Registry.open(b.root)
        assert files_of(b.built("tiny-folders").path) == files_of(built.path)
        assert b.verify(["tiny-folders"]) == {"tiny-folders": []}
        assert not staging.exists()
    finally:
        endpoint.stop()


@pytest.mark.parametrize("url", ["memory://registry-pushed"])
def test_push_to_memory_store(synth_small, tmp_path, url):
    a = every_recipe(tmp_path, synth_small["imagenet-train"], synth_small["imagenet-val"])
    built = a.resolve("val-first", jobs=1)
    pushed = a.push(["val-first"], url)
    assert pushed[0].copied == built.marker.files
    assert open_store(url).verify(built.key) == []


def test_a_folder_as_a_cache(synth_small, tmp_path):
    a = every_recipe(tmp_path / "a", synth_small["imagenet-train"], synth_small["imagenet-val"])
    b = every_recipe(tmp_path / "b", synth_small["imagenet-train"], synth_small["imagenet-val"])
    built = a.resolve("val-first", jobs=1)
    folder = str(tmp_path / "team")
    a.push(["val-first"], folder)
    done = b.pull(["val-first"], folder)
    assert (done[0].copied, done[0].present) == (built.marker.files, False)
    assert files_of(b.built("val-first").path) == files_of(built.path)
    assert b.pull(["val-first"], folder)[0].present
