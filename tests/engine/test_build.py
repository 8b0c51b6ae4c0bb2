"""Keys, build-only-what-is-missing, and determinism across worker counts."""

import os
import shutil
from pathlib import Path

import pytest

from dataset_registry import Registry, SourceError, VerifyError
from dataset_registry.recipes.select import Select
from dataset_registry.testing.stores import forge_table

from ..conftest import copy_manifests, run_cli, write_imagenet_manifest

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


def test_a_builds_spent_parts_are_removed_beside_its_record(private, monkeypatch):
    """finalize puts the parts aside, beside the staging folder; they are removed on a
    thread while the build is published and recorded, and gone when resolve returns."""
    from dataset_registry.artifact import finalize

    put_aside = []
    real = finalize.remove_meanwhile

    def remove_meanwhile(folder):
        put_aside.append((folder, sorted(os.listdir(folder))))
        return real(folder)

    monkeypatch.setattr(finalize, "remove_meanwhile", remove_meanwhile)
    built = private.resolve(CAL, jobs=2)  # (its record left to engine/resolving.py)
    assert len(put_aside) == 2  # CAL and its input
    for folder, names in put_aside:
        assert os.path.dirname(folder) == os.path.join(private.store.root, ".staging")
        assert folder.endswith(".spent") and ".parts" in names
    assert staging_of(private) == []
    assert built.files().fetchall()  # published with its file table


def test_a_build_failing_after_its_parts_were_put_aside_leaves_nothing(private, monkeypatch):
    """Nothing in staging (its parts, put aside, removed too), nothing in the catalog."""
    from dataset_registry import StorageError

    def refuse(staging, marker):
        raise StorageError("the store refused the commit")

    monkeypatch.setattr(private.resolver.store, "commit", refuse)
    with pytest.raises(StorageError, match="refused the commit"):
        private.resolve(CAL, jobs=1)
    assert staging_of(private) == []
    assert private.sql("SELECT count(*) FROM files").rows == [(0,)]
    assert private.sql("SELECT count(*) FROM artifacts").rows == [(0,)]


def test_an_interrupt_just_after_the_parts_were_put_aside_leaves_nothing(private,
                                                                          monkeypatch):
    from dataset_registry.artifact import finalize

    def interrupted(folder):
        raise KeyboardInterrupt  # (a Ctrl-C before the remover begins)

    monkeypatch.setattr(finalize, "remove_meanwhile", interrupted)
    with pytest.raises(KeyboardInterrupt):
        private.resolve(CAL, jobs=1)
    assert staging_of(private) == []


@pytest.mark.parametrize("first", [KeyboardInterrupt, ValueError])
def test_a_ctrl_c_while_a_stopped_build_cleans_up_waits_for_the_cleanup(private,
                                                                        monkeypatch, first):
    """A Ctrl-C (another, or the first after an error) as the staging area is being
    removed is noted, the removal finished, then the interrupt raised: it stopped the
    removal halfway, leaving a staging area that only gc removed."""
    import signal

    from dataset_registry.artifact import finalize
    from dataset_registry.stores.local import LocalStore

    def stopped(folder):
        raise first("stopped")  # (the build stops just after its parts were put aside)

    abort = LocalStore.abort

    def interrupted(store, staging):
        os.kill(os.getpid(), signal.SIGINT)  # a Ctrl-C as the removal begins
        abort(store, staging)

    monkeypatch.setattr(finalize, "remove_meanwhile", stopped)
    monkeypatch.setattr(LocalStore, "abort", interrupted)
    with pytest.raises(KeyboardInterrupt):
        private.resolve(CAL, jobs=1)
    assert staging_of(private) == []


def test_dry_run_lists_what_is_missing_in_order(private):
    todo = [n.name for n in private.resolver.missing([CAL])]
    assert todo == ["imagenet2012-val-min", CAL]
    private.resolve("imagenet2012-val-min")
    assert [n.name for n in private.resolver.missing([CAL])] == [CAL]


# -- records are verified, never trusted ---------------------------------------------------

@pytest.fixture
def chain(tmp_path, synth_small) -> Registry:
    """`few` (4 val images) built; `copy` reads `few`'s artifact (not built)."""
    write_imagenet_manifest(tmp_path, """
  - {name: few, recipe: select, inputs: {images: val}, params: {first: 4}}
  - {name: copy, recipe: select, inputs: {images: few},
     params: {first: 4, validate_images: false}}
""")
    reg = Registry.open(str(tmp_path))
    reg.set_source("val", synth_small["imagenet-val"])
    reg.resolve("few", jobs=1)
    return reg


def snapshot(folder: str) -> dict[str, tuple]:
    """What a reader sees of a folder: every path's bytes, inode and mode."""
    found = {}
    for path in sorted(Path(folder).rglob("*")):
        if ".locks" in path.parts:
            continue  # lock files come and go with every build attempt
        st = path.lstat()
        data = path.read_bytes() if path.is_file() else None
        found[str(path.relative_to(folder))] = (data, st.st_ino, st.st_mode)
    return found


def staging_of(reg: Registry) -> list[str]:
    staging = Path(reg.store.root, ".staging")
    return sorted(os.listdir(staging)) if staging.exists() else []


FIRST = "ILSVRC2012_val_00000001.JPEG"


@pytest.mark.parametrize("forgery", ["dotdot", "absolute", "symlink"])
def test_an_upstream_row_leading_outside_its_artifact_is_refused(chain, tmp_path, forgery):
    secret = tmp_path / "secret.JPEG"
    secret.write_bytes(b"top secret")
    few = chain.built("few")
    table = os.path.join(few.path, "_files.parquet")
    if forgery == "symlink":
        row = FIRST
        os.chmod(few.path, 0o755)
        os.remove(os.path.join(few.path, FIRST))
        os.symlink(secret, os.path.join(few.path, FIRST))
        why = f"leads out of the artifact through the link {FIRST!r}"
    else:
        row = "../../../secret.JPEG" if forgery == "dotdot" else str(secret)
        assert forgery == "absolute" or os.path.samefile(os.path.join(few.path, row), secret)
        forge_table(chain.store, tmp_path, f"CASE WHEN path = '{FIRST}' THEN '{row}' ELSE path "
                    f"END AS path, CASE WHEN path = '{FIRST}' THEN 10 ELSE size END AS size",
                    few.key)
        why = ("climbs out of the artifact with '..'" if forgery == "dotdot"
               else "is an absolute path")
    before = snapshot(str(tmp_path / "registry"))
    out = run_cli("resolve", "copy", "--jobs", "1", cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    assert f"registry: error: {table}: row {row!r} {why}; refusing to read it\n" in out.stderr
    assert "registry resolve --repair few" in out.stderr and "Traceback" not in out.stderr
    assert out.stdout == ""
    assert snapshot(str(tmp_path / "registry")) == before
    assert Registry.open(str(tmp_path)).status("copy") == "missing"
    assert staging_of(chain) == []
    if forgery == "symlink":
        assert f"{few.path}/{FIRST}: a link leading out of the artifact" in \
            chain.store.verify(few.key)


@pytest.mark.parametrize("replace, why", [
    ("NULL::BIGINT AS size", "has no size"),
    ("'abc' AS xxh3", "has an xxh3 that is not 32 hex digits"),
    (f"'{'zz' * 16}' AS xxh3", "has an xxh3 that is not 32 hex digits"),
    ("'a' || chr(10) || 'b' AS class",
     "has a line break in its path, member, class or attributes")],
    ids=["no-size", "short-xxh3", "not-hex", "line-break"])
def test_an_upstream_row_that_cannot_be_read_is_refused(chain, tmp_path, replace, why):
    """Read column-wise, a row without a size, with an xxh3 that is no digest or a line
    break in a name is one line naming it, never a Python error or misread columns."""
    few = chain.built("few")
    table = os.path.join(few.path, "_files.parquet")
    value, column = replace.rsplit(" AS ", 1)
    forge_table(chain.store, tmp_path, f"CASE WHEN path = '{FIRST}' THEN {value} ELSE {column} "
                f"END AS {column}", few.key)
    before = snapshot(str(tmp_path / "registry"))
    out = run_cli("resolve", "copy", "--jobs", "1", cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    assert f"registry: error: {table}: row {FIRST!r} {why}; refusing to read it\n" in out.stderr
    assert "registry resolve --repair few" in out.stderr and "Traceback" not in out.stderr
    assert out.stdout == ""
    assert snapshot(str(tmp_path / "registry")) == before
    assert Registry.open(str(tmp_path)).status("copy") == "missing"
    assert staging_of(chain) == []


def break_marker(reg: Registry, name: str, data: bytes) -> str:
    marker = os.path.join(reg.built(name).path, "_registry.json")
    os.chmod(marker, 0o644)
    Path(marker).write_bytes(data)
    return marker


def test_a_marker_that_does_not_parse_is_never_served(chain, tmp_path):
    assert run_cli("resolve", "few", cwd=tmp_path).returncode == 0  # the key cache is warm
    marker = break_marker(chain, "few", b'{"key": "trunc')
    for command in (["resolve", "few"], ["path", "few"]):
        out = run_cli(*command, cwd=tmp_path)
        assert out.returncode == 1 and out.stdout == "", (command, out)
        assert out.stderr.startswith(f"registry: error: {marker}: the marker does not parse "
                                     "as JSON (")
        assert out.stderr.endswith("few (key " + chain.key("few") + ") is damaged; repair it "
                                   "with: registry resolve --repair few\n")
    listed = run_cli("list", cwd=tmp_path)
    assert listed.returncode == 0 and "Traceback" not in listed.stderr
    rows = {line.split("\t")[0]: line.split("\t")[3] for line in listed.stdout.splitlines()[1:]}
    assert rows["few"] == "damaged" and rows["copy"] == "missing" and rows["val"] == "ready"
    assert f"{marker}: the marker does not parse as JSON" in listed.stderr


@pytest.mark.parametrize("how", ["missing", "truncated", "garbage"])
def test_a_damaged_file_table_is_never_served(chain, tmp_path, how):
    """A marker whose `_files.parquet` is gone, cut short or replaced: listed as damaged,
    refused by resolve and path (the key cache's fast path too), and `files()` of a
    Resolved taken before says so, never a raw DuckDB error."""
    assert run_cli("resolve", "few", cwd=tmp_path).returncode == 0  # the key cache is warm
    few = chain.built("few")
    table = os.path.join(few.path, "_files.parquet")
    os.chmod(few.path, 0o755)
    if how == "missing":
        os.remove(table)
    else:
        data = Path(table).read_bytes()
        os.chmod(table, 0o644)
        Path(table).write_bytes(data[:len(data) // 2] if how == "truncated" else b"PAR1" * 9)
    why = "missing" if how == "missing" else "unreadable as a file table ("
    for command in (["resolve", "few"], ["path", "few"]):
        out = run_cli(*command, cwd=tmp_path)
        assert out.returncode == 1 and out.stdout == "", (command, out)
        assert out.stderr.startswith(f"registry: error: {table}: {why}")
        assert out.stderr.endswith("few (key " + chain.key("few") + ") is damaged; repair it "
                                   "with: registry resolve --repair few\n")
    listed = run_cli("list", cwd=tmp_path)
    rows = {line.split("\t")[0]: line.split("\t")[3] for line in listed.stdout.splitlines()[1:]}
    assert listed.returncode == 0 and rows["few"] == "damaged"
    with pytest.raises(VerifyError, match="repair"):
        few.files().fetchall()
    assert run_cli("resolve", "--repair", "few", cwd=tmp_path).returncode == 0
    assert len(chain.built("few").files().fetchall()) == 4


def test_verify_reports_each_damaged_artifact_and_goes_on(chain, tmp_path):
    copy = chain.resolve("copy", jobs=1)
    marker = break_marker(chain, "few", b"")
    changed = Path(copy.path, FIRST)
    changed.chmod(0o644)
    changed.write_bytes(b"changed")
    for names in ([], ["few", "copy"]):
        out = run_cli("verify", *names, cwd=tmp_path)
        assert out.returncode == 1 and "Traceback" not in out.stderr
        label = "few" if names else chain.key("few")
        assert f"\n{label}: {marker}: the marker is empty\n" in out.stderr
        label = "copy" if names else copy.key
        assert f"\n{label}: {changed}: size 7, recorded " in out.stderr
        assert out.stderr.endswith("registry resolve --repair NAME\n")


def damage(path: str, how: str) -> str:
    """Damage artifact folder `path` one way; the problem verify is to report."""
    os.chmod(path, 0o755)
    target = os.path.join(path, FIRST)
    if how == "tampered":
        os.chmod(target, 0o644)
        data = bytearray(Path(target).read_bytes())
        data[len(data) // 2] ^= 1
        Path(target).write_bytes(bytes(data))
        return f"{target}: content changed (xxh3 differs from the record)"
    if how == "deleted":
        os.remove(target)
        return f"{target}: missing"
    if how == "no-table":
        os.remove(os.path.join(path, "_files.parquet"))
        return f"{path}/_files.parquet: missing"
    if how == "table-middle":  # its ends whole (so served), a page of it zeroed
        table = os.path.join(path, "_files.parquet")
        os.chmod(table, 0o644)
        data = bytearray(Path(table).read_bytes())
        data[len(data) // 2:len(data) // 2 + 40] = bytes(40)
        Path(table).write_bytes(bytes(data))
        return f"{path}/_files.parquet: unreadable as a file table ("
    os.chmod(os.path.join(path, "_registry.json"), 0o644)
    Path(path, "_registry.json").write_bytes(b"\x00garbage")
    return f"{path}/_registry.json: the marker does not parse as JSON"


@pytest.mark.parametrize("how", ["tampered", "deleted", "no-table", "table-middle",
                                 "garbage-marker"])
def test_repair_rebuilds_a_damaged_artifact_in_place(chain, tmp_path, how):
    few = chain.built("few")

    def contents() -> dict[str, bytes | None]:  # the marker's build time is new
        return {k: v[0] for k, v in snapshot(few.path).items() if k != "_registry.json"}

    intact = contents()
    problem = damage(few.path, how)
    out = run_cli("resolve", "--repair", "few", "--jobs", "1", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout == few.path + "\n"
    assert out.stderr.startswith(f"repaired few: {problem}")
    assert contents() == intact
    assert all(mode & 0o222 == 0 for _, _, mode in snapshot(few.path).values())
    assert run_cli("verify", "few", cwd=tmp_path).returncode == 0
    assert staging_of(chain) == []  # the damaged folder, once aside, is gone
    again = Registry.open(str(tmp_path)).built("few")
    assert again.digest == few.digest
    assert Registry.open(str(tmp_path)).sql(
        "SELECT count(*) FROM files WHERE key = ?", [few.key]).rows == [(4,)]


def test_repair_of_an_intact_artifact_changes_nothing(chain, tmp_path):
    few = chain.built("few")
    before = snapshot(few.path)
    out = run_cli("resolve", "--repair", "few", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout == few.path + "\n" and out.stderr == "few: verified, nothing to repair\n"
    assert snapshot(few.path) == before


def test_repair_of_a_dataset_repairs_its_damaged_input(chain, tmp_path):
    copy = chain.resolve("copy", jobs=1)
    copy_before = snapshot(copy.path)
    few = chain.built("few")
    problem = damage(few.path, "deleted")
    out = run_cli("resolve", "copy", cwd=tmp_path)  # only markers are read: it is served
    assert out.returncode == 0 and out.stdout == copy.path + "\n"
    repaired = chain.resolve("copy", jobs=1, repair=True)
    assert repaired.repaired == {"few": [problem]} and repaired.built_now
    assert snapshot(copy.path) == copy_before
    assert chain.verify() == {few.key: [], copy.key: []}


def test_a_failed_repair_leaves_the_damaged_artifact_as_it_was(chain, tmp_path, monkeypatch):
    from dataset_registry import BuildError

    few = chain.built("few")
    damage(few.path, "tampered")
    before = snapshot(few.path)

    def boom(*args, **kwargs):
        raise BuildError("the rebuild failed")

    monkeypatch.setattr(Select, "plan", boom)
    with pytest.raises(BuildError, match="the rebuild failed"):
        chain.resolve("few", jobs=1, repair=True)
    assert snapshot(few.path) == before
    assert staging_of(chain) == []
