"""The leak audit on real photos (tiles of tests/fixtures/real/photos) with planted exact
copies, near copies (re-encoded JPEG at quality 70, resized by 5%), a copy within a split,
a truncated image and tiny images: every plant found, no clean image flagged; a second
audit decodes nothing; `sample`'s `duplicates: together` keeps copies on one side."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import numpy as np
import pytest

from dataset_registry import BadInputError, Registry
from dataset_registry.reports import phash
from dataset_registry.reports.audit import audit

from ..conftest import write_manifest
from ..realkit import digits, encode, near_copy, photo_tiles, png

VAL_TILES = ("02", "22")  # per photo: these two tiles are val's, the other seven train's
EXACT = ("astronaut-00", "coffee-10", "retina-01")  # copied byte for byte into val
NEAR = {"camera-11": 0.95, "chelsea-11": 1.05, "rocket-11": 0.95, "coffee-12": 1.05}
WITHIN = "chelsea-10"  # copied byte for byte within train
TINY = {"train": (3, 50, 700), "val": (1200, 1500)}  # 8x8 UCI digits


def tile_file(name: str, k: int) -> str:
    return f"{name}.png" if k % 2 == 0 else f"{name}.jpg"


def write_planted(root: Path) -> dict[str, set]:
    """`<split>/<photo>/<tile>` class folders with the plants; what the audit must find."""
    found: dict[str, set] = {"exact": set(), "near": set(), "within": set()}
    where: dict[str, tuple[str, bytes]] = {}
    for k, (name, tile) in enumerate(photo_tiles().items()):
        photo, ij = name.rsplit("-", 1)
        split = "val" if ij in VAL_TILES else "train"
        data = encode(tile, "PNG" if k % 2 == 0 else "JPEG")
        path = f"{photo}/{tile_file(name, k)}"
        _write(root / split / path, data)
        where[name] = (f"{split}/{path}", data)
    for name in EXACT:
        path, data = where[name]
        copy = f"val/{name.split('-')[0]}/copy-{Path(path).name}"
        _write(root / copy, data)
        found["exact"].add((path, copy))
    for name, scale in NEAR.items():
        path, data = where[name]
        copy = f"val/{name.split('-')[0]}/near-{Path(path).stem}.jpg"
        _write(root / copy, near_copy(data, scale))
        found["near"].add((path, copy))
    path, data = where[WITHIN]
    again = f"train/chelsea/again-{Path(path).name}"
    _write(root / again, data)
    found["within"].add((path, again))
    whole = encode(photo_tiles()["camera-21"], "JPEG")
    _write(root / "val/camera/broken.jpg", whole[:len(whole) // 2])
    images, _ = digits()
    for split, picks in TINY.items():
        for i in picks:
            _write(root / split / "tiny" / f"digit-{i}.png", png(images[i]))
    return found


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> tuple[Path, dict[str, set]]:
    root = tmp_path_factory.mktemp("planted") / "photos"
    return root, write_planted(root)


def open_source(root: Path, data: Path, datasets: str = "") -> Registry:
    write_manifest(root, f"""
sources:
  - {{name: photos, layout: image-folder}}
files:
  - {{name: notes, path: notes.txt}}
{datasets}""")
    (root / "manifests" / "notes.txt").write_text("not images\n")
    reg = Registry.open(str(root))
    reg.set_source("photos", str(data))
    return reg


def named(member: dict[str, str]) -> str:
    return f"{member['split']}/{member['name']}"


def test_every_planted_copy_is_found_and_no_clean_image_flagged(tmp_path, planted):
    data, plants = planted
    reg = open_source(tmp_path, data)
    report = reg.audit("photos", jobs=1)
    assert report["leak"] is True and report["kind"] == "source"
    assert report["key"] == reg.resolver.source_info("photos").fingerprint
    exact = {tuple(named(m) for m in g["members"]) for g in report["exact_across"]}
    assert exact == plants["exact"]
    assert all(g["copies"] == 2 and g["splits"] == {"train": 1, "val": 1}
               for g in report["exact_across"])
    near = {(named(p["a"]), named(p["b"])) for p in report["near_across"]}
    assert near == plants["near"]  # every plant, and nothing else: no clean tile flagged
    assert all(p["distance"] <= phash.THRESHOLD for p in report["near_across"])
    within = {tuple(named(m) for m in g["members"]) for g in report["exact_within"]}
    assert within == {tuple(sorted(pair)) for pair in plants["within"]}  # in name order
    assert [named(u) for u in report["undecodable"]] == ["val/camera/broken.jpg"]
    assert "corrupt or truncated image" in report["undecodable"][0]["why"]
    assert report["counts"] == {"exact_across": 3, "exact_within": 1, "near_across": 4,
                                "undecodable": 1}
    near_info = report["near"]
    assert near_info["checked"] and near_info["decoded"] and near_info["why_not"] is None
    assert near_info["too_small"] == 5 and near_info["unhashable"] == 0
    assert near_info["method"].startswith("pHash, 64 bits (ImageHash ")
    train, val = report["splits"]["train"], report["splits"]["val"]
    assert train["members"] == 6 * 7 + 1 + 3 and val["members"] == 6 * 2 + 3 + 4 + 1 + 2
    assert train["per_class"]["chelsea"] == 8 and train["per_class"]["tiny"] == 3
    assert train["balance"] == {"smallest": "tiny", "min": 3, "largest": "chelsea", "max": 8,
                                "ratio": 2.667}
    assert val["per_class"] == {"astronaut": 3, "camera": 4, "chelsea": 3, "coffee": 4,
                                "retina": 3, "rocket": 3, "tiny": 2}
    assert report["members"] == train["members"] + val["members"]
    # distinct images each decoded once: the copy within train is one image
    assert near_info["images_decoded"] == report["members"] - 3 - 1


def test_a_second_audit_decodes_nothing(tmp_path, planted, monkeypatch):
    data, _ = planted
    reg = open_source(tmp_path, data)
    first = reg.audit("photos", jobs=1)
    decoded = []
    real = phash.fingerprint
    monkeypatch.setattr(phash, "fingerprint", lambda *a: decoded.append(1) or real(*a))
    again = reg.audit("photos", jobs=1)
    assert decoded == [] and again["near"]["images_decoded"] == 0
    assert again == first | {"near": first["near"] | {"images_decoded": 0}}
    cached = phash.Fingerprints(reg.state_dir).files()
    assert len(cached) == 1 and Path(cached[0]).parent == Path(reg.state_dir) / "phash"


def test_no_near_reads_only_the_indexes(tmp_path, planted, monkeypatch):
    data, _ = planted
    reg = open_source(tmp_path, data)
    monkeypatch.setattr(phash, "fingerprint", lambda *a: pytest.fail("decoded an image"))
    report = reg.audit("photos", near=False)
    assert report["counts"] == {"exact_across": 3, "exact_within": 1, "near_across": None,
                                "undecodable": None}
    assert report["near_across"] is None and report["undecodable"] is None
    assert report["leak"] is True and not report["near"]["decoded"]
    assert not (Path(reg.state_dir) / "phash").exists()


def test_the_threshold_separates_near_copies_from_distinct_photos():
    """What the README's choice rests on: over all 54 tiles, each near copy (quality 70,
    resized to 95% and to 105%) is within THRESHOLD bits of its tile, and every two
    distinct tiles are far beyond it."""
    hashes, copies = [], []
    for k, tile in enumerate(photo_tiles().values()):
        data = encode(tile, "PNG" if k % 2 == 0 else "JPEG")
        state, value, _ = phash.fingerprint(data, True)
        assert state == phash.HASHED
        hashes.append(value)
        for scale in (0.95, 1.05):
            copies.append((value ^ phash.fingerprint(near_copy(data, scale), True)[1]).bit_count())
    apart = [(a ^ b).bit_count() for a, b in itertools.combinations(hashes, 2)]
    assert len(copies) == 108 and len(apart) == 1431
    assert max(copies) <= phash.THRESHOLD < min(apart)
    assert min(apart) >= phash.THRESHOLD + 6  # a margin, not a coincidence
    assert np.median(copies) <= 2


def test_near_pairs_agrees_with_every_pair_compared_one_by_one():
    """Across block edges (16 rows, 16384 columns): the same pairs as a plain loop."""
    rng = np.random.default_rng(5)
    a = rng.integers(0, 2**64, 40, dtype=np.uint64)
    b = rng.integers(0, 2**64, 40_000, dtype=np.uint64)
    for i, j, flips in ((0, 0, 0), (15, 16383, 3), (16, 16384, 10), (39, 39_999, 11),
                        (20, 30_000, 7)):
        b[j] = a[i] ^ np.uint64(sum(1 << bit for bit in range(flips)))
    ids_a, ids_b = np.arange(40), np.arange(40, 40_040)
    ids_b[30_000] = ids_a[20]  # the same content: an exact copy, not a near one
    i, j, d, total = phash.near_pairs(a, b, 10, ids_a, ids_b)
    want = {(x, y, (int(a[x]) ^ int(b[y])).bit_count()) for x in range(40)
            for y in np.nonzero(np.bitwise_count(a[x] ^ b) <= 10)[0].tolist()
            if ids_a[x] != ids_b[y]}
    assert set(zip(i.tolist(), j.tolist(), d.tolist(), strict=True)) == want
    assert total == len(want) and {(0, 0, 0), (15, 16383, 3), (16, 16384, 10)} <= want
    assert phash.near_pairs(a, b, 10, ids_a, ids_b, keep=2)[3] == total  # all counted
    assert len(phash.near_pairs(a, b, 10, ids_a, ids_b, keep=2)[0]) == 2


def test_the_cache_merges_its_files_and_forgets_a_damaged_one(tmp_path):
    cache = phash.Fingerprints(str(tmp_path))
    raw = [b"\x05" * 8 + b"\0" * 7 + b"\1", b"\x05" * 8 + b"\0" * 8, b"\xff" * 16]
    a, b, c = (np.frombuffer(d, "S16") for d in raw)  # b ends in NULs numpy's S16 drops
    one = np.ones(1, np.uint64)
    cache.add(b, np.array([phash.DECODED], np.uint8), 0 * one, {})  # before ImageHash
    for _ in range(16):
        cache.add(a, np.array([phash.HASHED], np.uint8), 7 * one, {})
    cache.add(b, np.array([phash.HASHED], np.uint8), 9 * one, {})
    cache.add(c, np.array([phash.UNDECODABLE], np.uint8), 0 * one, {0: "corrupt"})
    Path(cache.folder, f"{cache.VERSION}-damaged.npz").write_bytes(b"not a zip")
    whole = Path(cache.files()[0]).read_bytes()  # a zip cut short: BadZipFile, not ValueError
    Path(cache.folder, f"{cache.VERSION}-truncated.npz").write_bytes(whole[:len(whole) // 2])
    assert len(cache.files()) == 21
    known = cache.load()  # past 16 files: merged into one, the damaged ones removed
    assert len(cache.files()) == 1
    for merged in (known, cache.load()):  # and the merged file reads the same
        at = merged.find(np.concatenate([a, b, c, np.frombuffer(b"\7" * 16, "S16")]))
        assert at[3] == -1 and len(merged.digests) == 3
        assert merged.states[at[:3]].tolist() == [phash.HASHED, phash.HASHED,
                                                  phash.UNDECODABLE]
        assert merged.hashes[at[:2]].tolist() == [7, 9]  # the hashed b, not the decoded one
        assert merged.why == {int(at[2]): "corrupt"}


def test_tiny_images_on_a_process_pool_are_decoded_but_not_compared(tmp_path):
    """1,797 real 8x8 digits: decoded on two processes as on one (8 chunks), every one too
    small for a perceptual hash: none compared, so none flagged."""
    from ..realkit import write_digit_folders

    data = write_digit_folders(tmp_path / "digits")
    for split in ("a", "b"):
        write_manifest(tmp_path / split, "sources:\n  - {name: d, layout: image-folder}\n")
        Registry.open(str(tmp_path / split)).set_source("d", str(data))
    one = Registry.open(str(tmp_path / "a")).audit("d", jobs=1)
    two = Registry.open(str(tmp_path / "b")).audit("d", jobs=2)
    assert one == two and one["near"]["too_small"] == 1797 == one["members"]
    assert one["near"]["images_decoded"] == 1797 and one["leak"] is False
    assert one["counts"] == {"exact_across": 0, "exact_within": 0, "near_across": 0,
                             "undecodable": 0}


SAMPLES = """
x-split: &split {seed: 1, splits: {train: 0.6, val: 0.4}}
datasets:
  - {name: mixed, recipe: sample, inputs: {images: photos}, params: *split}
  - name: mixed-any
    recipe: sample
    inputs: {images: photos}
    params: {<<: *split, duplicates: any}
  - name: together
    recipe: sample
    inputs: {images: photos}
    params: {<<: *split, duplicates: together}
  - {name: shards, recipe: webdataset, inputs: {images: photos}, params: {split: train}}
"""


@pytest.fixture(scope="module")
def pooled(tmp_path_factory, planted) -> Path:
    """One split: every tile and plant of `planted` in class folders (copies side by side)."""
    data, _ = planted
    pool = tmp_path_factory.mktemp("pool") / "photos"
    for path in data.rglob("*"):
        if path.is_file() and path.name != "broken.jpg":
            split = path.relative_to(data).parts[0]
            target = pool / path.parent.name / f"{split}-{path.name}"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    return pool


def test_sample_keeps_exact_copies_on_one_side_with_duplicates_together(tmp_path, pooled):
    reg = open_source(tmp_path, pooled, SAMPLES)
    assert reg.key("mixed") == reg.key("mixed-any") != reg.key("together")  # the default
    reg.resolve("mixed", jobs=1)
    reg.resolve("together", jobs=1)
    mixed, together = reg.audit("mixed", jobs=1), reg.audit("together", jobs=1)
    assert mixed["kind"] == "dataset" and mixed["key"] == reg.key("mixed")
    assert set(mixed["splits"]) == {"train", "val"} == set(together["splits"])
    assert mixed["counts"]["exact_across"] >= 1  # this seed splits some copies
    assert together["counts"]["exact_across"] == 0 and together["exact_across"] == []
    copies = mixed["counts"]["exact_across"] + mixed["counts"]["exact_within"]
    assert together["counts"]["exact_within"] == copies == 4  # each pair kept on one side
    assert together["members"] == mixed["members"] == sum(
        1 for p in pooled.rglob("*") if p.is_file())
    # the near copies are still split: `together` is about exact copies only
    assert together["counts"]["near_across"] >= 1 and together["leak"] is True


def test_a_dataset_audited_again_reads_no_image(tmp_path, pooled):
    """After the first audit every image file of the artifact is overwritten: the second
    audit, reading only the file table and the cache, gives the same report."""
    reg = open_source(tmp_path, pooled, SAMPLES)
    built = reg.resolve("together", jobs=1)
    first = reg.audit("together", jobs=1)
    assert first["near"]["images_decoded"] > 0
    images = [p for p in Path(built.path).rglob("*") if p.suffix in (".png", ".jpg")]
    assert len(images) == first["members"]
    for path in images:
        path.chmod(0o644)
        path.write_bytes(b"\0" * path.stat().st_size)  # same size: nothing re-hashes it
    again = reg.audit("together", jobs=1)
    assert again == first | {"near": first["near"] | {"images_decoded": 0}}


def test_what_cannot_be_audited_is_refused_in_one_line(tmp_path, pooled):
    reg = open_source(tmp_path, pooled, SAMPLES)
    with pytest.raises(BadInputError, match=r"^no dataset, source or file named 'photo' "):
        reg.audit("photo")
    with pytest.raises(BadInputError, match=r"^audit: notes is a file; audit a source or a "
                                            r"dataset$"):
        reg.audit("notes")
    with pytest.raises(BadInputError, match=r"^mixed is not built \(key \w+\); run: registry "
                                            r"resolve mixed$"):
        reg.audit("mixed")
    with pytest.raises(BadInputError, match=r"^audit: a threshold of 65 bits is not within "
                                            r"0\.\.64$"):
        reg.audit("photos", threshold=65)
    reg.resolve("shards", jobs=1)
    with pytest.raises(BadInputError, match=r"^audit: dataset shards \(key \w+\) holds no "
                                            r"image files .*: photos$"):
        audit(reg, "shards")
    assert not (Path(reg.state_dir) / "phash").exists()  # nothing decoded, nothing cached


def test_images_of_one_colour_are_not_near_copies_of_each_other(tmp_path):
    """pHash of a flat image is noise: black and white once matched at 1 bit. Flat images
    are decoded, counted as `flat` and not compared; an exact copy of one still is found."""
    from PIL import Image

    data = tmp_path / "solid"
    for split, name, colour in [("train", "black", (0, 0, 0)), ("val", "white", (255,) * 3),
                                ("val", "red", (255, 0, 0)), ("train", "grey", (128,) * 3),
                                ("val", "grey-again", (128,) * 3)]:
        path = data / split / "a" / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (64, 64), colour).save(path)
    report = open_source(tmp_path / "p", data).audit("photos", jobs=1)
    assert report["near"]["checked"] and report["near"]["flat"] == 5
    assert report["near_across"] == [] and report["counts"]["near_across"] == 0
    from dataset_registry.cli.audit import summary

    assert "near copies: 5 images of one colour not compared" in "\n".join(summary(report))
    assert [sorted(named(m) for m in g["members"]) for g in report["exact_across"]] == \
        [["train/a/grey.png", "val/a/grey-again.png"]]
