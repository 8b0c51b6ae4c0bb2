"""The dataset card in a real browser: headless chromium opens the page from disk, and the
DOM it built and a screenshot of it are checked, for 5 classes of real photos and for the
1,000 ImageNet classes (synthetic). Without chromium these skip, saying so, unless the
environment variable CI is set: then they fail (`.ci/run` installs it)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from dataset_registry import Registry
from dataset_registry.domains.imagenet.synth import SynthSpec, synthesize

from ..conftest import write_imagenet_manifest
from .pagekit import class_counts, parse
from .photokit import CLASSES, LICENSE, built_photos

SHOT = (1200, 1600)


@pytest.fixture(scope="module")
def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed, and CI is set: .ci/run installs it "
                        "(apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run does)")
    return found


def browse(chromium: str, page: Path) -> tuple[str, Image.Image]:
    """(the DOM chromium built from `page`, a screenshot of it at SHOT)."""
    profile = page.parent / f"{page.stem}-profile"  # nothing of the user's own
    run = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--no-first-run", f"--user-data-dir={profile}"]
    dom = subprocess.run([*run, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    shot = page.with_suffix(".png")
    subprocess.run([*run, f"--screenshot={shot}", f"--window-size={SHOT[0]},{SHOT[1]}",
                    page.as_uri()], capture_output=True, timeout=60, check=True)
    with Image.open(shot) as im:
        return dom, im.convert("RGB")


def looks_drawn(shot: Image.Image) -> bool:
    """Not a blank page: photos and text give thousands of colours (a page of text, a few
    hundred), and some of the pixels are far from white (bars, thumbnails, text)."""
    colours = shot.getcolors(maxcolors=1 << 24) or []
    inked = sum(n for n, rgb in colours if min(rgb) < 200)
    return len(colours) > 1000 and inked > 0.05 * shot.width * shot.height


def test_the_card_of_5_classes_in_a_browser(chromium, tmp_path):
    reg = built_photos(tmp_path / "project", ("photos-split",))
    page = tmp_path / "card.html"
    page.write_text(reg.report("photos-split"), encoding="utf-8")
    dom, shot = browse(chromium, page)
    seen = parse(dom)
    assert seen.h1 == "photos-split"
    assert f"license: {LICENSE}" in seen.text
    assert seen.bars == class_counts(reg, "photos-split")  # every class, with its count
    imgs = [i for found in seen.figures.values() for i in found]
    assert len(imgs) == sum(min(6, n) for _, n in CLASSES.values())
    assert all(i["src"].startswith("data:image/jpeg;base64,") for i in imgs)
    assert shot.size == SHOT and looks_drawn(shot)
    blank = tmp_path / "blank.html"  # the check tells a blank page from a card
    blank.write_text("<!DOCTYPE html><html><body><p>card</p></body></html>")
    assert not looks_drawn(browse(chromium, blank)[1])


@pytest.fixture(scope="module")
def imagenet(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """All 1,000 ImageNet classes, two synthetic train images each (plus the hazards),
    as WebDataset shards."""
    root = tmp_path_factory.mktemp("imagenet-card")
    synth = synthesize(str(root / "synth"), SynthSpec(
        val_images=50, train_classes=1000, train_per_class=2, width=24, height=18,
        kaggle=False))
    write_imagenet_manifest(root, """
  - name: train-shards
    recipe: webdataset
    inputs: {images: train, labels: labels}
    params: {split: train, shard_count: 8}
""")
    reg = Registry.open(str(root))
    reg.set_source("train", synth["imagenet-train"])
    reg.resolve("train-shards", jobs=1)
    return reg


def test_a_card_of_1000_classes_is_compact(imagenet):
    html = imagenet.report("train-shards")
    assert len(html.encode()) < 500_000  # the README gives its size
    seen = parse(html)
    assert seen.bars == class_counts(imagenet, "train-shards")
    assert len(seen.bars[""]) == 1000
    assert len(seen.figures) == 60  # of the 1,000, evenly spaced by name
    assert all(len(imgs) in (2, 3) for imgs in seen.figures.values())
    assert "60 of the 1,000 classes shown, evenly spaced by name, 3 images each" in seen.text


def test_the_card_of_1000_classes_in_a_browser(chromium, imagenet, tmp_path):
    page = tmp_path / "card.html"
    page.write_text(imagenet.report("train-shards"), encoding="utf-8")
    dom, shot = browse(chromium, page)
    seen = parse(dom)
    assert seen.h1 == "train-shards"
    assert seen.bars == class_counts(imagenet, "train-shards")
    assert sum(len(i) for i in seen.figures.values()) == \
        sum(len(i) for i in parse(page.read_text()).figures.values()) > 60
    assert looks_drawn(shot)
