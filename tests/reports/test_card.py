"""The dataset card (`Registry.report`, reports/card.py): what it shows of a build of real
photos, read back from the page; thumbnails from inside every shard format; and what it
does with files changed since the build."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dataset_registry import Registry
from dataset_registry.errors import BadInputError, ManifestError
from dataset_registry.formats.tfrecord import encode_example
from dataset_registry.reports.thumbs import example_bytes

from ..conftest import write_manifest
from .pagekit import class_counts, image, parse
from .photokit import BROKEN, CLASSES, HOSTILE, LICENSE, built_photos, make_project


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    return built_photos(tmp_path_factory.mktemp("photos"))


def test_the_card_shows_the_build_its_card_classes_samples_skipped_and_runs(photos):
    html = photos.report("photos-split")
    page = parse(html)
    built = photos.built("photos-split")
    assert page.h1 == "photos-split"
    assert built.key in page.text and built.digest in page.text
    assert photos.key("photos") in page.text  # the lineage, down to the source fingerprint
    assert f"license: {LICENSE}" in page.text  # escaped in the HTML, intact on the page
    assert "&lt;public domain&gt; &amp; friends" in html
    # every class of every split, with its count, largest first
    assert page.bars == class_counts(photos, "photos-split")
    assert set(page.bars) == {"train", "val"}
    assert sum(n for bars in page.bars.values() for _, n in bars) == \
        sum(crops for _, crops in CLASSES.values()) == 30
    # six thumbnails a class (or all it has), each a small JPEG of one of its images
    for cls, (_, crops) in CLASSES.items():
        imgs = page.figures[cls]
        assert len(imgs) == min(6, crops) and not page.missing[cls]
        assert all(i["alt"].startswith(f"{cls}/") for i in imgs)
        assert all(max(image(i["src"]).size) <= 96 for i in imgs)
    # the image that is no image, skipped; the job run that read it
    assert BROKEN in page.text and "1 image(s) the recipe could not use" in page.text
    (run_id,), = photos.sql("SELECT run_id FROM runs").rows
    assert run_id in page.text and "photos-train" in page.text
    # recipe and params, the build record
    assert "Recipe: sample (version 1)" in page.text and '{"train": 0.75, "val": 0.25}' \
        in page.text


def test_the_page_is_self_contained_and_escapes_what_users_wrote(photos):
    html = photos.report("photos-split")
    page = parse(html)
    assert HOSTILE in page.text  # the card's meta, shown as text ...
    assert not [t for t, _ in page.tags if t in ("script", "link", "iframe", "object")]
    srcs = [a["src"] for t, a in page.tags if "src" in a]
    assert srcs and all(s.startswith("data:image/jpeg;base64,") for s in srcs)
    hrefs = [a["href"] for t, a in page.tags if "href" in a]
    assert hrefs == ["https://scikit-image.org/docs/stable/api/skimage.data.html"]
    csp = [a["content"] for t, a in page.tags if a.get("http-equiv") ==
           "Content-Security-Policy"]
    assert csp == ["default-src 'none'; img-src data:; style-src 'unsafe-inline'"]
    assert "url(" not in html and "@import" not in html
    # the same artifact, the same page: thumbnails chosen by content, not by chance
    assert photos.report("photos-split") == html


def _difference(thumb: Image.Image, original: Path) -> float:
    """Mean absolute difference (0..255) between a thumbnail and the image it shows."""
    with Image.open(original) as im:
        expected = im.convert("RGB").resize(thumb.size, Image.Resampling.BOX)
    return float(np.abs(np.asarray(thumb.convert("RGB"), dtype=np.int16) -
                        np.asarray(expected, dtype=np.int16)).mean())


@pytest.mark.parametrize("name", ["photos-wds", "photos-rec", "photos-tfr", "photos-tiny"])
def test_thumbnails_show_the_image_inside_each_format(photos, name):
    """WebDataset, RecordIO and TFRecord records are opened where they lie in the shards;
    the packed pixels of `downscale` are shown from their source member."""
    page = parse(photos.report(name))
    counts = class_counts(photos, name)
    assert page.bars == counts
    totals = _totals(counts)
    folder = Path(photos.root) / "photos"
    for cls in CLASSES:
        assert not page.missing[cls]
        assert len(page.figures[cls]) == min(6, totals[cls])
        for img in page.figures[cls]:
            thumb = image(img["src"])
            assert _difference(thumb, folder / img["alt"]) < 8, img["alt"]
            other = next(c for c in CLASSES if c != cls)  # the check tells images apart
            assert _difference(thumb, folder / other / f"{other}-0.{_ext(other)}") > 25


def _ext(cls: str) -> str:
    return "png" if CLASSES[cls][0].endswith(".png") else "jpg"


def test_example_bytes_reads_what_the_tfrecord_writer_writes():
    jpeg = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 3
    example = encode_example({"image/class/label": 7, "image/encoded": jpeg,
                              "image/filename": b"a.jpg", "image/height": 4})
    assert example_bytes(example, b"image/encoded") == jpeg
    assert example_bytes(example, b"image/filename") == b"a.jpg"
    assert example_bytes(example, b"image/missing") is None
    with pytest.raises(ValueError, match="runs past the message"):
        example_bytes(example[:-3], b"image/encoded")


def _split_artifact(tmp_path: Path) -> tuple[Registry, Path]:
    reg = make_project(tmp_path)
    built = reg.resolve("photos-split", jobs=1)
    return reg, Path(built.path)


def _shown(reg: Registry, cls: str) -> list[str]:
    return [i["alt"] for i in parse(reg.report("photos-split")).figures[cls]]


def test_a_file_changed_since_the_build_is_shown_as_changed_not_as_the_data(tmp_path):
    reg, folder = _split_artifact(tmp_path)
    member = _shown(reg, "chelsea")[0]
    (path,), = reg.sql(f"SELECT path FROM files f JOIN artifacts a USING (key) WHERE "
                       f"a.name = 'photos-split' AND member = '{member}'").rows
    target = folder / path
    os.chmod(target.parent, 0o755)
    os.chmod(target, 0o644)
    shutil.copyfile(Path(reg.root) / "photos" / "coffee" / "coffee-0.png", target)
    page = parse(reg.report("photos-split"))
    assert page.missing["chelsea"] == [f"{member}: changed since it was built (registry "
                                       "verify)"]
    assert member not in [i["alt"] for i in page.figures["chelsea"]]
    assert len(page.figures["chelsea"]) == 5 and not page.missing["camera"]
    assert "1 image(s) could not be shown" in page.text


def test_a_link_leading_out_of_the_artifact_is_not_followed(tmp_path):
    reg, folder = _split_artifact(tmp_path)
    member = _shown(reg, "camera")[0]
    (path,), = reg.sql(f"SELECT path FROM files f JOIN artifacts a USING (key) WHERE "
                       f"a.name = 'photos-split' AND member = '{member}'").rows
    target = folder / path
    os.chmod(target.parent, 0o755)
    target.unlink()
    target.symlink_to(Path(reg.root) / "photos" / member)  # the very bytes, outside it
    page = parse(reg.report("photos-split"))
    assert page.missing["camera"] == [f"{member}: its row leads out of the artifact "
                                      "through a link"]
    assert "Not audited: " in page.text and "leads out of the artifact" in page.text


def test_an_unlabelled_dataset_is_one_class_of_its_own(tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(3):
        Image.new("RGB", (20, 10), (80 * i, 40, 200)).save(flat / f"img-{i}.png")
    write_manifest(tmp_path, """
sources:
  - {name: flat, layout: image-folder}
datasets:
  - {name: flat-all, recipe: select, inputs: {images: flat}, params: {first: 3, split: train}}
""")
    reg = Registry.open(str(tmp_path))
    reg.set_source("flat", str(flat))
    reg.resolve("flat-all", jobs=1)
    page = parse(reg.report("flat-all"))
    assert page.bars == {"": [("", 3)]}
    assert len(page.figures[""]) == 3 and "(unlabelled)" in page.text
    assert "license: not stated" in page.text and "No card:" in page.text


def test_only_a_built_dataset_has_a_card(tmp_path):
    reg = make_project(tmp_path)
    with pytest.raises(BadInputError, match=r"^photos-split is not built \(key [0-9a-f]{32}\); "
                                            r"run: registry resolve photos-split$"):
        reg.report("photos-split")
    with pytest.raises(BadInputError, match=r"^photos is a source, not a dataset: a card shows "
                                            r"a built dataset"):
        reg.report("photos")
    with pytest.raises(ManifestError, match="no dataset, source or file named 'photo'"):
        reg.report("photo")
    assert not (Path(tmp_path) / "registry").exists() or \
        not any((Path(tmp_path) / "registry").glob("*/*/_registry.json"))


def test_a_clone_without_the_source_shows_the_shards_own_images(tmp_path):
    """A teammate with the manifests, registry.lock and the store but not the photos: the
    records' images come from the shards themselves; packed pixels need the source, and
    the card says so."""
    reg = make_project(tmp_path)
    for name in ("photos-wds", "photos-rec", "photos-tfr", "photos-tiny"):
        reg.resolve(name, jobs=1)
    reg.write_lock()
    clone = Registry.open(str(tmp_path), state=str(tmp_path / "clone-state"))
    assert not clone.resolver.is_set("photos")
    for name in ("photos-wds", "photos-rec", "photos-tfr"):
        page = parse(clone.report(name))
        assert not any(page.missing.values()), name
        assert sum(len(i) for i in page.figures.values()) == \
            sum(min(6, n) for _, n in class_counts(clone, name)[""]) == 23, name
    page = parse(clone.report("photos-tiny"))
    assert not any(page.figures.values())
    whys = {why.split(": ", 1)[1] for found in page.missing.values() for why in found}
    assert whys == {"holds no image, and its source is not set here"}


def test_a_card_of_a_dataset_in_s3_reads_its_samples_in_place(s3, tmp_path):
    """moto's server: the file tables are fetched, the samples read by range; the artifact
    itself is never downloaded."""
    bucket = s3.bucket()
    reg = make_project(tmp_path, store=f"{bucket.url}/store", storage_options=s3.options())
    for name in ("photos-split", "photos-wds"):
        reg.resolve(name, jobs=1)
        page = parse(reg.report(name))
        assert page.bars == class_counts(reg, name)
        assert not any(page.missing.values())
        assert sum(len(i) for i in page.figures.values()) == \
            sum(min(6, n) for n in _totals(class_counts(reg, name)).values())
    cached = [p.name for p in (tmp_path / ".registry-state").rglob("*") if p.is_file()]
    assert "_files.parquet" in cached
    assert not [n for n in cached if n.endswith((".png", ".jpg", ".tar"))]
    assert s3.options()["secret"] not in reg.report("photos-wds")


def _totals(counts: dict[str, list[tuple[str, int]]]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for bars in counts.values():
        for cls, n in bars:
            totals[cls] = totals.get(cls, 0) + n
    return totals


@pytest.fixture(scope="module")
def planted_photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The audit's planted photos (exact and near copies, a broken image) as class folders
    with no split: a `sample` split of them puts copies on both sides."""
    from .test_audit import write_planted

    root = tmp_path_factory.mktemp("planted")
    write_planted(root / "split")
    for path in sorted((root / "split").glob("*/*/*")):
        flat = root / "photos" / path.parent.name / path.name
        flat.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, flat)
    return root / "photos"


def test_the_card_shows_the_audit_of_its_splits(tmp_path, planted_photos):
    """A `sample` split of the planted photos (copies across train and val): the card
    names the exact copies, and with `near` the near ones, as `registry audit` finds them;
    the same split made with `duplicates: together` reads clean of exact copies."""
    from .test_audit import open_source

    reg = open_source(tmp_path, planted_photos, """datasets:
  - {name: split, recipe: sample, inputs: {images: photos},
     params: {n: 67, seed: 3, on_error: skip, splits: {train: 0.5, val: 0.5}}}
""")
    reg.resolve("split")
    audit = reg.audit("split", near=False)
    assert audit["counts"]["exact_across"] > 0  # the copies landed on both sides
    page = parse(reg.report("split"))
    assert "Audit: copies across splits" in page.text and "Leak:" in page.text
    assert f"{audit['counts']['exact_across']} group" in page.text
    for group in audit["exact_across"][:10]:
        assert group["xxh3"][:12] in page.text
    assert "near copies across splits not checked" in page.text
    near = parse(reg.report("split", near=True))
    found = reg.audit("split")
    assert found["near"]["checked"]
    assert found["counts"]["near_across"] > 0
    assert f"near copies across splits {found['counts']['near_across']} pair" in near.text
    for pair in found["near_across"][:10]:
        assert f"{pair['a']['name']} ~ {pair['b']['split']}/ {pair['b']['name']}" in near.text
    assert f"{found['counts']['undecodable']} image" in near.text


def test_a_clean_card_says_no_image_is_in_two_splits(photos):
    page = parse(photos.report("photos-split"))
    assert "No image has an exact copy in another split (near copies not checked)." in page.text
    assert "Leak:" not in page.text


def test_a_downscale_into_split_folders_is_audited_by_its_splits(tmp_path, planted_photos):
    """`downscale` with `format: folders` writes `<split>/<class>/...` and declares those
    splits: its audit, its card and its diff all see train and val, and the copies a
    split of the planted photos put on both sides are a leak in each."""
    from .test_audit import open_source

    reg = open_source(tmp_path, planted_photos, """datasets:
  - {name: split, recipe: sample, inputs: {images: photos},
     params: {n: 67, seed: 3, on_error: skip, splits: {train: 0.5, val: 0.5}}}
  - {name: small, recipe: downscale, inputs: {train: split, val: split},
     params: {width: 16, height: 16, format: folders, on_error: skip}}
""")
    small = reg.resolve("small")
    assert small.marker.splits == ("train", "val")
    audit = reg.audit("small", near=False)
    assert set(audit["splits"]) == {"train", "val"}
    assert audit["leak"] and audit["counts"]["exact_across"] == \
        reg.audit("split", near=False)["counts"]["exact_across"]
    assert "Leak:" in parse(reg.report("small")).text
    assert {s["split"] for s in reg.diff("split", "small")["splits"]} >= {"train", "val"}


def test_card_fields_of_any_json_type_are_shown_as_text():
    """A marker from a shared store may hold any JSON in its card: shown, escaped, never
    a crash."""
    from dataset_registry.reports.card_html import _card_fields

    html = _card_fields({"license": 5, "homepage": ["<x>"], "citation": {"a": 1},
                         "meta": "<b>flat</b>"})
    assert "<dd>5</dd>" in html and "&lt;x&gt;" in html and "&quot;a&quot;: 1" in html
    assert "&lt;b&gt;flat&lt;/b&gt;" in html and "<b>" not in html
