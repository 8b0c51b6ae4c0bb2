"""Image checks first, on every worker, where a checked build's own tasks would leave
workers idle (engine/checkfirst.py): the same bytes, skips and failures as a build whose
tasks check their own images."""

from __future__ import annotations

import json
import os
import re
from contextlib import contextmanager

import numpy as np
import pytest

from dataset_registry import BadImageError
from dataset_registry.engine import checkfirst
from dataset_registry.engine.imagechecks import ImageChecks
from dataset_registry.recipes import RECIPES, imagecheck
from dataset_registry.sources.members import CHECKED_OK

from ..pluginkit import done_records
from ..recipes.shardkit import registry
from ..recipes.test_imagecheck import (
    BAD,
    SHARD_RECIPES,
    assert_nothing_published,
    jpeg,
    params,
    train_source,
)
from ..recipes.test_imagecheck_cache import skips

BAD_ONES = {kind: BAD[kind][0] for kind in ("truncated", "empty", "random")}
IMAGES = 3 * 3 + 1 + len(BAD_ONES)  # train_source's good images, and the bad ones


def test_busy_is_the_share_of_the_workers_time_the_tasks_fill():
    six_shards = [1000] * 5 + [20]  # 5,020 photos in WebDataset shards of 1,000
    assert checkfirst.busy(six_shards, 16) == pytest.approx(5020 / 16000)
    assert checkfirst.busy(six_shards, 2) == pytest.approx(5020 / 6000)  # 3,000 vs 2,020
    assert checkfirst.busy([1000] * 30, 16) == pytest.approx(30 / 32)
    assert checkfirst.busy([1000] * 32, 16) == 1.0
    assert checkfirst.busy([5, 1, 1, 1, 1, 1], 2) == 1.0  # the first free worker takes each
    assert checkfirst.busy([7], 1) == 1.0 and checkfirst.busy([], 4) == 1.0


class Steps:
    """A progress factory that keeps each step's label and what it counted."""

    def __init__(self) -> None:
        self.counted: dict[str, int] = {}

    @contextmanager
    def __call__(self, label: str, total: int | None, unit: str = "items"):
        self.counted[label] = 0

        def advance(n: int) -> None:
            self.counted[label] += n

        yield advance


def build(tmp_path, name: str, recipe: str, extra: str, jobs: int):
    source, _ = train_source(tmp_path, BAD_ONES)
    # tfrecord's two shards of 7 and 6 would keep 2 workers busy: three, of 5, 5 and 3
    p = params(recipe, "train", extra).replace("shards: 2", "shards: 3")
    p = p.replace("shard_count: 4, ", "") if "shard_count" in extra else p
    reg = registry(tmp_path / name, source, recipe, p)
    steps = reg.resolver.progress = Steps()
    return reg, reg.resolve("out", jobs=jobs), steps


@pytest.mark.parametrize("recipe", SHARD_RECIPES)
def test_uneven_tasks_check_first_on_every_worker_with_the_same_bytes(tmp_path, recipe):
    """One worker checks in its tasks; two, given tasks too few or uneven to keep both
    busy, check every image first: the same digest and skips, and the verdicts kept."""
    own, alone, alone_steps = build(tmp_path, "alone", recipe, ", on_error: skip", jobs=1)
    pool, first, pool_steps = build(tmp_path, "pool", recipe, ", on_error: skip", jobs=2)
    assert "out: image checks" not in alone_steps.counted
    # each image checked once, first; then the tasks' own step counts them all again
    assert pool_steps.counted == {"out: image checks": IMAGES, "out": IMAGES}
    assert (first.key, first.digest) == (alone.key, alone.digest)
    assert first.marker.skipped == len(BAD_ONES)
    assert skips(pool, first.key) == skips(own, alone.key)
    known = ImageChecks(pool.state_dir).load()
    assert len(known.digests) == IMAGES and len(known.refused) == len(BAD_ONES)


@pytest.mark.parametrize("executor", [None, "dask://local"], ids=["pool", "dask"])
def test_more_check_chunks_than_tasks_on_either_executor(tmp_path, monkeypatch, executor):
    """Chunks of 2: seven check tasks before the build's four, on the pool or on Dask; the
    check tasks write nothing the artifact holds."""
    _, alone, _ = build(tmp_path, "alone", "webdataset", ", on_error: skip", jobs=1)
    monkeypatch.setattr(checkfirst, "CHUNK", 2)
    source, _ = train_source(tmp_path, BAD_ONES)
    reg = registry(tmp_path / "chunks", source, "webdataset",
                   params("webdataset", "train", ", on_error: skip"))
    steps = reg.resolver.progress = Steps()
    built = reg.resolve("out", jobs=2, executor=executor)
    assert steps.counted["out: image checks"] == IMAGES
    assert (built.digest, built.marker.files) == (alone.digest, alone.marker.files)
    assert built.marker.skipped == len(BAD_ONES)


def test_a_refused_image_fails_the_build_in_the_same_words(tmp_path):
    bad = {"truncated": BAD["truncated"][0]}
    source, _ = train_source(tmp_path, bad)
    words = []
    for name, jobs in (("alone", 1), ("pool", 2)):
        reg = registry(tmp_path / name, source, "webdataset", params("webdataset", "train"))
        steps = reg.resolver.progress = Steps()
        with pytest.raises(BadImageError) as raised:
            reg.resolve("out", jobs=jobs)
        words.append(str(raised.value))
        assert_nothing_published(reg)
    assert "out: image checks" in steps.counted  # the pool's build checked first
    assert words[0] == words[1] and "_truncated.JPEG (source " in words[0]


def test_tasks_that_keep_the_workers_busy_check_their_own_images(tmp_path):
    # 13 images in shards of one: 13 tasks keep 2 workers busy 13/14 of the time
    _, built, steps = build(tmp_path, "even", "webdataset", ", on_error: skip, shard_count: 1",
                            jobs=2)
    assert steps.counted == {"out": IMAGES}
    assert built.marker.skipped == len(BAD_ONES)


def test_each_content_is_checked_once_in_chunks(tmp_path, monkeypatch):
    """Members sharing bytes are checked once; chunks hold at most CHUNK members; members
    with a verdict already are left out."""
    source, flat = train_source(tmp_path, {"copy": jpeg(0)})  # a copy of a class's first
    assert len(set(flat.values())) == len(flat) - 1
    reg = registry(tmp_path / "p", source, "webdataset",
                   params("webdataset", "train"))  # shards of 4
    node = reg.manifests.get("out")
    inputs, _, _ = reg.resolver.inputs(node)
    tasks = RECIPES["webdataset"].plan(node.params, inputs)
    monkeypatch.setattr(checkfirst, "CHUNK", 2)
    chunks = checkfirst.unchecked_chunks(tasks)
    assert max(len(c) for c in chunks) == 2
    checked = [ref.xxh3 for chunk in chunks for ref in chunk]
    assert len(checked) == len(set(checked)) == len(flat) - 1
    last = tasks[-1].members  # given verdicts, its members are left out
    last.checks = np.full(len(last), CHECKED_OK, dtype=np.uint8)
    left = [ref.xxh3 for chunk in checkfirst.unchecked_chunks(tasks) for ref in chunk]
    assert set(left) == set(checked) - {ref.xxh3 for ref in last}


# webdataset, logging each shard it finished to ran.log; with a file `kill-after` holding
# N, the task after the N-th kills the process running it (with --jobs 1: the build)
KILLED_WDS = '''
import os
import signal
from pathlib import Path

from dataset_registry.plugins import register
from dataset_registry.recipes.webdataset import WebDataset

HERE = Path(__file__).parent


class LoggedShards(WebDataset):
    name = "loggedshards"

    @classmethod
    def run(cls, params, task, out):
        count = super().run(params, task, out)
        log = HERE / "ran.log"
        ran = log.read_text().splitlines() if log.exists() else []
        flag = HERE / "kill-after"
        if flag.exists() and len(ran) == int(flag.read_text()):
            out.close()
            os.kill(os.getpid(), signal.SIGKILL)
        with log.open("a") as f:
            f.write(task.name + "\\n")
        return count


register("recipes", "loggedshards", LoggedShards)
'''


def shards_project(root, plugin: str, recipe: str, shard_count: int):
    """A plugin project (tests/pluginkit.py) whose dataset `shards` is `recipe`, registered by
    the module `plugin`, over its images."""
    from ..pluginkit import plugin_project

    return plugin_project(root, {f"{recipe}_plugin": plugin}, (
        f"  - {{name: shards, recipe: {recipe}, inputs: {{images: data}},\n"
        f"     params: {{require_all_classes: false, shard_count: {shard_count}}}}}\n"))


def shown_digest(root) -> str:
    """The digest `registry show shards` gives in `root`."""
    from ..conftest import run_cli

    shown = run_cli("show", "shards", cwd=root)
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)["digest"]


def test_a_killed_build_resumed_on_more_workers_reuses_its_finished_tasks(tmp_path):
    """Killed on one worker after its first shard; rerun on two, whose tasks left (5 and 2
    images) leave one idle: their images are checked first, and the tasks now carry
    verdicts the killed build's did not, but the finished shard is reused all the same."""
    import signal

    from ..conftest import run_cli
    from ..pluginkit import published

    clean = shards_project(tmp_path / "clean", KILLED_WDS, "loggedshards", 5)
    assert run_cli("resolve", "shards", "--jobs", "1", cwd=clean).returncode == 0
    root = shards_project(tmp_path / "killed", KILLED_WDS, "loggedshards", 5)
    (root / "kill-after").write_text("1")
    killed = run_cli("resolve", "shards", "--jobs", "1", cwd=root)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    (root / "kill-after").unlink()
    first = (root / "ran.log").read_text().splitlines()
    assert len(first) == 1 and len(published(root)) == 1  # its staging area, kept
    done = run_cli("resolve", "shards", "--jobs", "2", cwd=root)  # (a process of its own:
    assert done.returncode == 0, done.stderr  # the plugin project's module stays there)
    again = (root / "ran.log").read_text().splitlines()[1:]
    assert len(again) == 2 and first[0] not in again
    # the rerun checked first the images of the two shards left (5 and 2), not the one
    # finished, and kept them in a cache file of their own; the finished task's 5 came with
    # its parts and were kept after the build, in another: 12 verdicts in all
    cache = ImageChecks(str(root / ".registry-state"))
    assert sorted(len(np.load(f)["digests"]) for f in cache.files()) == [5, 7]
    assert len(cache.load().digests) == 12
    assert shown_digest(root) == shown_digest(clean)
    verify = run_cli("verify", "shards", cwd=root)
    assert verify.returncode == 0, verify.stdout + verify.stderr


# webdataset whose one shard of the 12 images is written in two regions (of 8 and 4) where
# the tasks decode; with a file `kill`, the second region's task kills the process running
# it before it writes anything (with --jobs 1: the build)
KILLED_REGIONS = '''
import os
import signal
from pathlib import Path

from dataset_registry.plugins import register
from dataset_registry.recipes import webdataset

webdataset.PART, webdataset.TAIL = 8, 0  # regions of 8 samples, none in a tail of 64s
HERE = Path(__file__).parent


class KilledRegions(webdataset.WebDataset):
    name = "killedregions"

    @classmethod
    def run(cls, params, task, out):
        if task.region and task.region.part == 1 and (HERE / "kill").exists():
            os.kill(os.getpid(), signal.SIGKILL)
        return super().run(params, task, out)


register("recipes", "killedregions", KilledRegions)
'''


def test_a_resumed_build_whose_checks_change_its_plan_runs_what_the_new_plan_needs(
        tmp_path):
    """Killed after the first of its shard's two regions: the verdicts of those 8 images
    were known, the other 4 not, so both builds plan regions. The rerun, on two workers,
    checks the 4 first (one task of 4 would leave one idle), and made again with every
    verdict known the plan is one whole shard: the killed build's region is no task of
    it. The shard and its rows are those of a build never killed."""
    import signal

    import duckdb
    import xxhash

    from ..conftest import run_cli

    def built(root):
        table = next((root / "registry").glob("??/*/_files.parquet"))
        rows = duckdb.sql(f"SELECT path, size, xxh3, byte_offset, record, member FROM "
                          f"'{table}' ORDER BY path, record NULLS FIRST").fetchall()
        return shown_digest(root), rows

    clean = shards_project(tmp_path / "clean", KILLED_REGIONS, "killedregions", 12)
    assert run_cli("resolve", "shards", "--jobs", "1", cwd=clean).returncode == 0
    root = shards_project(tmp_path / "killed", KILLED_REGIONS, "killedregions", 12)
    ImageChecks(str(root / ".registry-state")).add(  # the first region's images, known
        (xxhash.xxh3_128_hexdigest(image.read_bytes()), "")
        for image in sorted((root / "data").glob("class-[01]/*")))
    (root / "kill").write_text("")
    killed = run_cli("resolve", "shards", "--jobs", "1", cwd=root)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert [r["index"] for r in done_records(root / "registry" / ".staging")] == [0]
    (root / "kill").unlink()
    done = run_cli("resolve", "shards", "--jobs", "2", cwd=root)
    assert done.returncode == 0, done.stderr
    digest, rows = built(root)
    assert len(rows) == 1 + 12 and (digest, rows) == built(clean)
    verify = run_cli("verify", "shards", cwd=root)
    assert verify.returncode == 0, verify.stdout + verify.stderr


# webdataset whose image decoder has a bug: it raises what no image check expects on
# class-1/img-0004.png, in the build and in every worker that runs a task
FRAGILE = '''
from dataset_registry.plugins import register
from dataset_registry.recipes import imagecheck
from dataset_registry.recipes.webdataset import WebDataset

decode = imagecheck.check_image


def fragile(data, name):
    if "class-1/img-0004.png" in name:
        raise ZeroDivisionError("a decoder bug")
    return decode(data, name)


imagecheck.check_image = fragile


class FragileShards(WebDataset):
    name = "fragileshards"


register("recipes", "fragileshards", FragileShards)
'''


def test_a_check_that_fails_unexpectedly_fails_as_the_task_would(tmp_path):
    """A decode that raises what the image checks do not expect (a decoder's bug) fails
    the build in the words of the task that writes the image, on one worker or two (whose
    one shard would leave one idle: the images are checked first). One chunk, one task:
    both run in the build's own process, which imported the plugin."""
    from ..conftest import run_cli
    from ..pluginkit import plugin_project, published

    said = []
    for jobs in ("1", "2"):
        root = plugin_project(tmp_path / jobs, {"fragile_plugin": FRAGILE}, (
            "  - {name: shards, recipe: fragileshards, inputs: {images: data},\n"
            "     params: {require_all_classes: false, shard_count: 20, on_error: skip}}\n"))
        failed = run_cli("resolve", "shards", "--jobs", jobs, cwd=root)
        assert failed.returncode == 1 and "Traceback" not in failed.stderr, failed.stderr
        said.append(failed.stderr.replace(str(root), "ROOT"))
        assert [p for p in published(root) if not p.startswith(".staging/")] == []
    assert said[0] == said[1]
    assert "shards: recipe 'fragileshards' failed in run on member 'class-1/img-0004.png'" \
        in said[0] and "ZeroDivisionError: a decoder bug" in said[0]


@pytest.fixture
def decodes(monkeypatch) -> list[bytes]:
    """Every image decoded to be checked in this process."""
    seen: list[bytes] = []
    check = imagecheck.check_image

    def counting(data: bytes, name: str):
        seen.append(data)
        return check(data, name)

    monkeypatch.setattr(imagecheck, "check_image", counting)
    return seen


def test_verdicts_an_unwritable_cache_cannot_keep_still_spare_the_tasks_a_decode(
        tmp_path, decodes):
    """The state folder's `imagechecks` is a file: no verdict can be kept. The images are
    checked first all the same (one chunk, one shard of 13 on two workers: both run in
    this process, where `decodes` counts), and the task, given the verdicts, decodes none:
    each image is decoded once, and the bytes and skips are a one-worker build's."""
    source, _ = train_source(tmp_path, BAD_ONES)
    one_shard = params("webdataset", "train", ", on_error: skip").replace(
        "shard_count: 4", "shard_count: 100")
    built = {}
    for name, jobs in (("alone", 1), ("pool", 2)):
        reg = registry(tmp_path / name, source, "webdataset", one_shard)
        steps = reg.resolver.progress = Steps()
        state = os.path.join(reg.state_dir, "imagechecks")
        os.makedirs(reg.state_dir, exist_ok=True)
        with open(state, "w") as f:
            f.write("not a folder")
        decodes.clear()
        built[name] = reg.resolve("out", jobs=jobs), reg
        assert len(decodes) == IMAGES, name  # once each: in the task, or first
        assert ("out: image checks" in steps.counted) == (jobs == 2)
        with open(state) as f:
            assert f.read() == "not a folder"
    (alone, own), (pool, reg) = built["alone"], built["pool"]
    assert (pool.key, pool.digest) == (alone.key, alone.digest)
    assert pool.marker.skipped == len(BAD_ONES)
    assert skips(reg, pool.key) == skips(own, alone.key)


def test_on_a_terminal_the_checks_show_a_bar_of_their_images(tmp_path):
    """The CLI's bars: the step before the tasks counts images, on stderr only."""
    from ..cli.test_progress import on_a_terminal
    from ..pluginkit import plugin_project

    root = plugin_project(tmp_path, {}, (
        "  - {name: shards, recipe: webdataset, inputs: {images: data},\n"
        "     params: {require_all_classes: false, shard_count: 5}}\n"))
    code, out, screen = on_a_terminal("resolve", "shards", "-j", "2", cwd=root)
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen)  # colours, cursor moves
    assert code == 0 and re.search(r"shards: image checks \S+ +\d+/12 images", shown), shown
    assert out.endswith("\n") and "\x1b" not in out



def test_a_member_changed_since_indexing_fails_as_the_task_would(tmp_path):
    """A member rewritten in place after its source was indexed (the build's Registry
    keeps the index it read) is refused when the images are checked first in the words
    and with the exit code the task reading it gives, and nothing is published."""
    from dataset_registry import Registry, SourceChangedError

    from ..pluginkit import plugin_project

    said = []
    for jobs in (1, 2):
        root = plugin_project(tmp_path / str(jobs), {}, (
            "  - {name: shards, recipe: webdataset, inputs: {images: data},\n"
            "     params: {require_all_classes: false, shard_count: 5}}\n"))
        reg = Registry.open(str(root))
        key = reg.key("shards")
        steps = reg.resolver.progress = Steps()
        member = root / "data" / "class-1" / "img-0004.png"
        data = bytearray(member.read_bytes())
        data[-1] ^= 0xFF
        member.write_bytes(bytes(data))
        with pytest.raises(SourceChangedError) as raised:
            reg.resolve("shards", jobs=jobs)
        said.append((raised.value.exit_code, str(raised.value).replace(str(root), "ROOT")))
        assert ("shards: image checks" in steps.counted) == (jobs == 2)
        assert reg.store.marker(key) is None and list(reg.store.committed()) == []
    assert said[0] == said[1]
    code, words = said[0]
    assert code == 2 and "'class-1/img-0004.png' changed since it was indexed" in words


def test_on_s3_with_dask_the_check_tasks_leave_nothing_behind(tmp_path, monkeypatch, s3,
                                                                dask_cluster):
    """A store on S3, tasks on a Dask cluster: each check task ships an empty provenance
    part to the build's staging prefix (more of them than the build's tasks, chunks of 2),
    which add no row; the bytes are a one-worker local build's, and the commit leaves
    nothing but the artifact in the bucket."""
    from dataset_registry import Registry

    from ..conftest import dask_address

    _, alone, _ = build(tmp_path, "alone", "webdataset", ", on_error: skip", jobs=1)
    monkeypatch.setattr(checkfirst, "CHUNK", 2)
    source, _ = train_source(tmp_path, BAD_ONES)
    registry(tmp_path / "s3", source, "webdataset",
             params("webdataset", "train", ", on_error: skip"))
    bucket = s3.bucket()
    reg = Registry.open(str(tmp_path / "s3"), store=f"{bucket.url}/store",
                        storage_options=s3.options())
    steps = reg.resolver.progress = Steps()
    built = reg.resolve("out", executor=dask_address(dask_cluster))
    assert steps.counted["out: image checks"] == IMAGES
    assert (built.key, built.digest, built.marker.files) == \
        (alone.key, alone.digest, alone.marker.files)
    assert built.marker.skipped == len(BAD_ONES)
    assert reg.verify() == {built.key: []}
    prefix = f"store/{built.key[:2]}/{built.key}/"
    assert all(k.startswith(prefix) for k in bucket.keys("store")), bucket.keys("store")
