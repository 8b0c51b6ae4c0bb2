"""ImageNet-tiny: fit, filter, colour, class subsets, hazards, determinism, bad input."""

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dataset_registry import BadImageError, BadInputError, ManifestError, Registry
from dataset_registry.domains.imagenet.synth import (
    CMYK_TRAIN,
    CMYK_VAL,
    PNG_IMPOSTOR,
    SynthSpec,
    synthesize,
)
from dataset_registry.recipes.imaging import Downscale, downscale
from dataset_registry.sources.index import member_sets
from dataset_registry.sources.members import read_member

from ..conftest import LABELS, make_tar, make_train_tar, write_imagenet_manifest
from .shardkit import count_opens

FIVE = ["n02676566", "n01773157", "n01622779", "n03452741", "n01944390"]
HAZARD_CLASSES = sorted({n.split("_")[0] for n in [PNG_IMPOSTOR, *CMYK_TRAIN]})
TRUTH = dict(line.split() for line in (LABELS / "caffe_val.txt").read_text().splitlines())
WNIDS = (LABELS / "caffe_synsets.txt").read_text().split()

# The tolerance the README states: mean absolute difference per channel (0-255) between the
# draft-scaled pipeline and full decode with the same fit and filter, ImageNet-sized photos.
TOLERANCE_MEAN, TOLERANCE_IMAGE = 6.0, 12.0


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny-synth")
    return synthesize(str(out), SynthSpec(val_images=1000, train_per_class=6, width=160,
                                          height=120, wnids=tuple(FIVE + HAZARD_CLASSES),
                                          kaggle=False), jobs=2)


def registry(root: Path, synth, params: str, name: str = "tiny") -> Registry:
    write_imagenet_manifest(root, f"""
  - name: {name}
    recipe: downscale
    inputs: {{train: train, val: val, labels: labels}}
    params: {{{params}}}
""")
    reg = Registry.open(str(root))
    reg.set_source("train", synth["imagenet-train"])
    reg.set_source("val", synth["imagenet-val"])
    return reg


def load(ds, split):
    base = Path(ds.path) / split
    members = (base / "members.txt").read_text().splitlines()
    return np.load(base / "images.npy"), np.load(base / "labels.npy"), members


def test_subset_holds_exactly_the_listed_classes_with_true_labels(tmp_path, synth):
    reg = registry(tmp_path, synth, f"width: 8, height: 8, fit: crop, classes: {FIVE}")
    ds = reg.resolve("tiny", jobs=2)
    classes = (Path(ds.path) / "classes.txt").read_text().splitlines()
    assert [c.split("\t")[0] for c in classes] == sorted(FIVE)
    assert classes[0] == "n01622779\t24\tgreat grey owl, great gray owl, Strix nebulosa"
    x, y, members = load(ds, "train")
    assert x.shape == (30, 8, 8, 3) and x.dtype == np.uint8
    for label, member in zip(y, members, strict=True):
        assert sorted(FIVE)[label] == member.split(".tar/")[0]
    vx, vy, vmembers = load(ds, "val")
    expected = [n for n in sorted(TRUTH)[:1000] if WNIDS[int(TRUTH[n])] in FIVE]
    assert vmembers == expected and len(vx) == len(expected)
    for label, member in zip(vy, vmembers, strict=True):
        assert sorted(FIVE)[label] == WNIDS[int(TRUTH[member])]
    truth = (Path(ds.path) / "val" / "ground_truth.txt").read_text().split()
    assert [int(t) for t in truth] == list(vy)
    assert (Path(ds.path) / "val" / "files.txt").read_text().split() == expected


def test_records_point_at_their_rows(tmp_path, synth):
    reg = registry(tmp_path, synth, f"width: 8, height: 8, color: gray, classes: {FIVE}")
    ds = reg.resolve("tiny", jobs=1)
    x, y, members = load(ds, "train")
    raw = (Path(ds.path) / "train" / "images.npy").read_bytes()
    rows = reg.sql("SELECT record, byte_offset, size, label, member FROM files WHERE key = ? "
                   "AND path = 'train/images.npy' AND record IS NOT NULL ORDER BY record",
                   [ds.key]).rows
    assert len(rows) == len(x) == 30 and x.shape[-1] == 1
    for record, offset, size, label, member in rows:
        assert raw[offset:offset + size] == x[record].tobytes()
        assert label == y[record] and member == members[record]


def test_outputs_match_full_decode_within_the_stated_tolerance(tmp_path):
    made = synthesize(str(tmp_path / "s"), SynthSpec(val_images=40, train_classes=1,
                                                     train_per_class=1, width=500, height=375,
                                                     kaggle=False))
    reg = registry(tmp_path, made, "width: 32, height: 32, fit: crop, "
                                   "require_all_classes: false")
    ds = reg.resolve("tiny", jobs=1)
    x, _, members = load(ds, "val")
    refs = member_sets(reg.resolver.source_info("val"))["val"]
    shape = Downscale(32, 32, "crop")
    diffs = []
    for row, member in zip(x, members, strict=True):
        reference = downscale(read_member(refs.get(member)), shape, member, draft=False)
        diffs.append(np.abs(row.astype(int).ravel() -
                            np.frombuffer(reference, np.uint8).astype(int)).mean())
    assert np.mean(diffs) <= TOLERANCE_MEAN and max(diffs) <= TOLERANCE_IMAGE
    assert np.mean(diffs) > 0  # it really is the draft path, not a full decode


def test_hazards_are_converted_not_skipped(tmp_path, synth):
    reg = registry(tmp_path, synth, f"width: 16, height: 16, classes: {HAZARD_CLASSES}")
    ds = reg.resolve("tiny", jobs=2)
    assert ds.marker.skipped == 0
    x, _, members = load(ds, "train")
    train = member_sets(reg.resolver.source_info("train"))["train"]
    hazards = [PNG_IMPOSTOR] + [f"{n}.JPEG" for n in CMYK_TRAIN]
    for name in hazards:
        member = f"{name.split('_')[0]}.tar/{name}"
        row = x[members.index(member)]
        ref = train.get(f"{name.split('_')[0]}/{name}")
        full = np.frombuffer(downscale(read_member(ref), Downscale(16, 16), name, draft=False),
                             np.uint8)
        assert np.abs(row.astype(int).ravel() - full).mean() <= TOLERANCE_IMAGE


def test_four_channel_val_image_and_grayscale(tmp_path):
    cmyk, gray = io.BytesIO(), io.BytesIO()
    Image.new("CMYK", (64, 48), (0, 255, 255, 0)).save(cmyk, "JPEG", quality=95)
    Image.new("L", (64, 48), 200).save(gray, "JPEG", quality=95)
    made = {"imagenet-val": str(make_tar(tmp_path / "val.tar", {
        CMYK_VAL: cmyk.getvalue(), "ILSVRC2012_val_00000001.JPEG": gray.getvalue()})),
        "imagenet-train": str(make_train_tar(tmp_path / "train.tar", {
            "n01751748": {"n01751748_1.JPEG": gray.getvalue()}}))}
    reg = registry(tmp_path, made, "width: 4, height: 4, require_all_classes: false")
    vx, _, vmembers = load(reg.resolve("tiny"), "val")
    assert vmembers == ["ILSVRC2012_val_00000001.JPEG", CMYK_VAL]
    assert np.all(np.abs(vx[0].astype(int) - 200) <= 2)  # gray replicated into R, G, B
    red = vx[1].reshape(-1, 3).mean(0)  # CMYK (0, 255, 255, 0) is red
    assert red[0] > 200 and red[1] < 40 and red[2] < 40


def test_luma_is_named_and_applied():
    red = io.BytesIO()
    Image.new("RGB", (64, 64), (255, 0, 0)).save(red, "PNG")
    rec709 = downscale(red.getvalue(), Downscale(4, 4, color="gray", luma="rec709"), "r")
    rec601 = downscale(red.getvalue(), Downscale(4, 4, color="gray", luma="rec601"), "r")
    assert set(rec709) == {round(0.2126 * 255)} and set(rec601) == {round(0.299 * 255)}


def test_pad_and_crop_geometry():
    wide = io.BytesIO()
    Image.new("RGB", (400, 100), (255, 255, 255)).save(wide, "PNG")
    pad = np.frombuffer(downscale(wide.getvalue(), Downscale(8, 8, "pad"), "w"), np.uint8)
    rows = pad.reshape(8, 8, 3)[:, :, 0]
    assert rows[0].max() == 0 and rows[4].min() == 255  # black bars above, image centred
    crop = np.frombuffer(downscale(wide.getvalue(), Downscale(8, 8, "crop"), "w"), np.uint8)
    assert crop.min() == 255


def test_one_and_two_workers_same_digest(tmp_path, synth):
    digests = set()
    for jobs in (1, 2):
        reg = registry(tmp_path / str(jobs), synth, f"width: 8, height: 8, classes: {FIVE}")
        digests.add(reg.resolve("tiny", jobs=jobs).digest)
    assert len(digests) == 1


def test_images_are_hashed_as_tasks_finish_not_read_back(tmp_path, synth, monkeypatch):
    """The follower hashes each images.npy while later tasks run: finish reads neither back
    (a serial pass over the whole file, every worker idle), and the digest is the one a
    whole-file hash gives."""
    import dataset_registry.core.keys as keys
    from dataset_registry.recipes.downscale import DownscaleRecipe

    hashed = []  # the artifact's files read back whole (keys hash the label files too)
    whole_file = keys.hash_file
    monkeypatch.setattr(keys, "hash_file", lambda path: whole_file(path) if not path.endswith(
        ".npy") else hashed.append(Path(path).parent.name) or whole_file(path))
    params = f"width: 8, height: 8, classes: {FIVE}"
    ds = registry(tmp_path / "follow", synth, params).resolve("tiny", jobs=2)
    assert hashed == []
    monkeypatch.setattr(DownscaleRecipe, "follow", classmethod(lambda cls, *args: None))
    again = registry(tmp_path / "whole", synth, params).resolve("tiny", jobs=2)
    assert sorted(hashed) == ["train", "val"]  # (what it used to do, checked to be seen)
    assert ds.digest == again.digest and ds.key == again.key


def test_a_disk_too_small_for_the_rows_fails_before_any_task(tmp_path, synth, monkeypatch):
    """images.npy is allocated before the first task: a disk that cannot hold it fails the
    build at once, one line naming the file, nothing committed."""
    import errno

    import dataset_registry.artifact.output as output
    from dataset_registry import BuildError
    from dataset_registry.recipes.downscale import DownscaleRecipe

    def full(fd, size):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    ran = []
    monkeypatch.setattr(output, "allocate", full)
    monkeypatch.setattr(DownscaleRecipe, "run", classmethod(lambda cls, *a: ran.append(1)))
    reg = registry(tmp_path, synth, f"width: 8, height: 8, classes: {FIVE}")
    # 5,888 bytes: the 128-byte .npy header and 30 train rows of 8 x 8 x 3
    with pytest.raises(BuildError, match=r"^\S+/train/images\.npy: cannot reserve 5,888 "
                                         r"bytes \(No space left on device\)$"):
        reg.resolve("tiny", jobs=1)
    assert ran == [] and list(reg.store.committed()) == []


def test_rows_are_hashed_whatever_order_tasks_finish_in(tmp_path, synth, monkeypatch):
    """Results arrive in any order (workers, a resumed build's finished tasks first): the
    follower hashes each split's rows in plan order all the same, and `finish` records
    its hashes (it reads no file back)."""
    import csv

    import dataset_registry.core.keys as keys
    from dataset_registry.artifact.marker import PARTS
    from dataset_registry.artifact.output import Output
    from dataset_registry.recipes.downscale import DownscaleRecipe

    hash_file, read_back = keys.hash_file, []
    monkeypatch.setattr(keys, "hash_file", lambda path: hash_file(path) if not path.endswith(
        ".npy") else read_back.append(path))  # (the label files are hashed for their keys)

    reg = registry(tmp_path, synth, "width: 8, height: 8, require_all_classes: false")
    node = reg.manifests.get("tiny")
    inputs, _, _ = reg.resolver.inputs(node)
    tasks = DownscaleRecipe.plan(node.params, inputs)
    staging = tmp_path / "staging"
    out = Output(str(staging), "finish")
    follow = DownscaleRecipe.follow(node.params, tasks, out)
    results = []
    for task in tasks:
        part = Output(str(staging), f"{task.index:06d}")
        results.append(DownscaleRecipe.run(node.params, task, part))
        part.close()
    for task in reversed(tasks):  # the last first: nothing can be hashed until the first
        follow(task.index, results[task.index])
    DownscaleRecipe.finish(node.params, inputs, results, out, tasks.context)
    out.close()
    assert read_back == []
    with open(staging / PARTS / "finish.files.csv", encoding="utf-8") as f:
        recorded = {row[0]: row[2] for row in csv.reader(f) if row[0].endswith(".npy")}
    assert len(recorded) == 4  # images and labels of train and val
    for path, xxh3 in recorded.items():
        assert xxh3 == hash_file(str(staging / path)), path


def test_each_image_is_decoded_once(tmp_path, synth, monkeypatch):
    """The recipe refuses bad images from its own decode: no separate image check opens
    them again (a second decode would cost as much as the first)."""
    opened = count_opens(monkeypatch)
    ds = registry(tmp_path, synth, f"width: 8, height: 8, classes: {FIVE}").resolve("tiny",
                                                                                    jobs=1)
    rows = sum(len(load(ds, split)[2]) for split in ("train", "val"))
    assert rows > 30 and opened == ["straight"] * rows  # the synthetic JPEGs are plain


def test_the_plan_ends_in_small_tasks(synth, tmp_path):
    """Every row in exactly one task, in order; the plan's last TAIL rows (reaching back
    past a small last split) in tasks of TAIL_CHUNK, the rest in tasks of _CHUNK."""
    from dataset_registry.recipes.downscale import _CHUNK, DownscaleRecipe, _tails, task_rows
    from dataset_registry.recipes.tasks import TAIL as _TAIL
    from dataset_registry.recipes.tasks import TAIL_CHUNK as _TAIL_CHUNK

    assert _tails({"train": 10_000, "val": 100}) == {"train": _TAIL - 100, "val": 100}
    assert _tails({"train": 10_000, "val": 5_000}) == {"train": 0, "val": _TAIL}
    for rows, tail in ((10_000, _TAIL), (300, 300), (_TAIL + 1, _TAIL), (1, 1), (700, 0)):
        spans = task_rows(rows, tail)
        assert [a for a, _ in spans] == [0] + [b for _, b in spans[:-1]] and spans[-1][1] == rows
        sizes = [b - a for a, b in spans]
        small = [b - a for a, b in spans if a >= rows - tail]
        assert sum(small) == tail and all(0 < n <= _TAIL_CHUNK for n in small)
        assert all(0 < n <= _CHUNK for n in sizes[:len(sizes) - len(small)])
    reg = registry(tmp_path, synth, "width: 8, height: 8, require_all_classes: false")
    node = reg.manifests.get("tiny")
    inputs, _, _ = reg.resolver.inputs(node)
    tasks = DownscaleRecipe.plan(node.params, inputs)
    for split in ("train", "val"):
        mine = [t for t in tasks if t.split == split]
        assert [t.start for t in mine] == list(np.cumsum([0] + [len(t) for t in mine[:-1]]))
        assert all(len(t) <= _TAIL_CHUNK for t in mine)  # the whole plan is its tail
    assert sum(len(t) for t in tasks) > 1000  # several tasks of each split
    assert [t.index for t in tasks] == list(range(len(tasks)))


def test_folders_format_is_image_folder_shaped(tmp_path, synth):
    reg = registry(tmp_path, synth, f"width: 8, height: 8, format: folders, classes: {FIVE}")
    ds = reg.resolve("tiny", jobs=2)
    pngs = sorted((Path(ds.path) / "train").glob("*/*.png"))
    assert len(pngs) == 30 and {p.parent.name for p in pngs} == set(FIVE)
    assert Image.open(pngs[0]).size == (8, 8)
    files = (Path(ds.path) / "val" / "files.txt").read_text().split()
    assert all((Path(ds.path) / f).exists() for f in files)


def test_truncated_jpeg_fails_or_is_skipped(tmp_path, synth):
    good = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 200, 10)).save(good, "JPEG")
    data = good.getvalue()
    train = {"n01440764": {"n01440764_1.JPEG": data, "n01440764_2.JPEG": data[:300]}}
    made = {"imagenet-train": str(make_train_tar(tmp_path / "train.tar", train)),
            "imagenet-val": str(make_tar(tmp_path / "val.tar", {
                "ILSVRC2012_val_00000001.JPEG": data}))}
    reg = registry(tmp_path, made, "width: 4, height: 4, require_all_classes: false")
    with pytest.raises(BadImageError, match=r"n01440764.tar/n01440764_2.JPEG \(source "
                                            r"[0-9a-f]{12}\): corrupt or truncated image: "):
        reg.resolve("tiny")
    assert list(reg.store.committed()) == []
    reg = registry(tmp_path / "skip", made, "width: 4, height: 4, require_all_classes: false, "
                                            "on_error: skip")
    ds = reg.resolve("tiny")
    _, _, members = load(ds, "train")
    assert members == ["n01440764.tar/n01440764_1.JPEG"] and ds.marker.skipped == 1


def test_decompression_bomb_is_refused(tmp_path):
    bomb = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(bomb, "PNG")
    made = {"imagenet-train": str(make_train_tar(tmp_path / "train.tar", {
        "n01440764": {"n01440764_1.JPEG": bomb.getvalue()}})),
        "imagenet-val": str(make_tar(tmp_path / "val.tar", {
            "ILSVRC2012_val_00000001.JPEG": bomb.getvalue()}))}
    reg = registry(tmp_path, made, "width: 4, height: 4, require_all_classes: false")
    with pytest.raises(BadImageError, match=r"refused: .*decompression bomb"):
        reg.resolve("tiny")


def test_missing_train_classes_are_refused(tmp_path, synth):
    reg = registry(tmp_path, synth, "width: 4, height: 4, classes: 10")
    with pytest.raises(BadInputError, match=r"10 of the 10 classes have no train images \(first: "
                                            r"n01440764"):
        reg.resolve("tiny")


def test_unknown_wnid_is_a_manifest_error_with_line(tmp_path, synth):
    with pytest.raises(ManifestError, match=r"manifests/test.yaml:11: datasets\[0\]\.params\."
                                            r"classes.*'n99999999' is not an ILSVRC2012 WNID"):
        registry(tmp_path, synth, "width: 4, height: 4, classes: [n01440764, n99999999]")


def test_shipped_tiny_manifests_expand():
    from dataset_registry.manifest import load_manifests

    from ..conftest import MANIFESTS

    names = {d.name for d in load_manifests(str(MANIFESTS)).datasets()}
    for size in (8, 16, 32, 64):
        for color in ("gray", "srgb"):
            for classes in ("5", "full"):
                assert f"imagenet-tiny-{size}x{size}-{color}-{classes}" in names


def test_eval_cli_on_a_built_subset(tmp_path, synth):
    import random

    from ..conftest import run_cli

    registry(tmp_path, synth, f"width: 8, height: 8, classes: {FIVE}").resolve("tiny")
    truth = (Path(Registry.open(str(tmp_path)).built("tiny").path) / "val" /
             "ground_truth.txt").read_text().split()
    rng = random.Random(3)
    (tmp_path / "pred.txt").write_text("".join(f"{t} " + " ".join(
        str(x) for x in rng.sample([c for c in range(5) if c != int(t)], 4)) + "\n"
        for t in truth))
    out = run_cli("eval", "pred.txt", "--dataset", "tiny", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[2].split() == ["1", "0.0000"]
    (tmp_path / "short.txt").write_text("0\n")
    out = run_cli("eval", "short.txt", "--dataset", "tiny", cwd=tmp_path)
    assert out.returncode == 2
    assert f"short.txt: 1 lines, but the val set has {len(truth)} images" in out.stderr


def test_a_16_bit_png_is_scaled_to_8_bits_not_clipped(tmp_path):
    """Mode I;16 (a 16-bit gray PNG): the high byte, as libpng's strip_16 (it was a
    TypeError in Image.eval)."""
    from .test_imagecheck import png16

    good = io.BytesIO()
    Image.new("RGB", (16, 12), (10, 200, 10)).save(good, "JPEG")
    made = {"imagenet-train": str(make_train_tar(tmp_path / "train.tar", {
        "n01440764": {"n01440764_1.png": png16()}})),
        "imagenet-val": str(make_tar(tmp_path / "val.tar", {
            "ILSVRC2012_val_00000001.JPEG": good.getvalue()}))}
    reg = registry(tmp_path, made, "width: 4, height: 2, color: gray, require_all_classes: false")
    x, _, members = load(reg.resolve("tiny"), "train")
    assert members == ["n01440764.tar/n01440764_1.png"]
    assert x[0, :, :2].ravel().tolist() == [200] * 4 and x[0, :, 2:].ravel().tolist() == [50] * 4
