"""The synthetic ImageNet carries the real names, labels and hazards."""

import io
import tarfile

from PIL import Image

from dataset_registry.domains.imagenet.synth import (
    CMYK_TRAIN,
    CMYK_VAL,
    PNG_IMPOSTOR,
    SynthSpec,
    synthesize,
)
from dataset_registry.sources.tarindex import tar_is_synthetic

from ...conftest import LABELS


def members(tar_path):
    with tarfile.open(tar_path) as tf:
        return {m.name: tf.extractfile(m).read() for m in tf if m.isfile()}


def test_val_names_labels_and_hazards(tmp_path):
    made = synthesize(str(tmp_path), SynthSpec(val_images=20_000, train_classes=1,
                                               train_per_class=1, width=16, height=12,
                                               kaggle=False), jobs=2)
    val = members(made["imagenet-val"])
    truth = (LABELS / "caffe_val.txt").read_text().splitlines()[:20_000]
    assert sorted(val) == [line.split()[0] for line in truth]
    assert tar_is_synthetic(made["imagenet-val"])
    cmyk = Image.open(io.BytesIO(val[CMYK_VAL]))
    assert cmyk.format == "JPEG" and cmyk.mode == "CMYK" and len(cmyk.getbands()) == 4
    modes = {Image.open(io.BytesIO(data)).mode for data in val.values()}
    assert modes == {"RGB", "L", "CMYK"}
    large = Image.open(io.BytesIO(val["ILSVRC2012_val_00004242.JPEG"]))
    assert large.width >= 3000
    assert b"synthetic ImageNet" in val["ILSVRC2012_val_00000001.JPEG"][:200]


def test_class_content_is_learnable_by_colour(tmp_path):
    """Images of one class share a mean colour; different classes differ."""
    import numpy as np

    made = synthesize(str(tmp_path), SynthSpec(val_images=2_000, train_classes=1,
                                               train_per_class=1, width=32, height=24,
                                               kaggle=False))
    val = members(made["imagenet-val"])
    labels = dict(line.split() for line in (LABELS / "caffe_val.txt").read_text().splitlines())
    by_class: dict[str, list] = {}
    for name, data in val.items():
        im = Image.open(io.BytesIO(data))
        if im.mode == "RGB" and im.width < 1000:
            by_class.setdefault(labels[name], []).append(np.asarray(im, float).mean((0, 1)))
    means = {c: np.mean(v, 0) for c, v in by_class.items() if len(v) >= 2}
    spread_within = np.mean([np.std(by_class[c], 0).mean() for c in means])
    centres = np.array(list(means.values()))
    spread_between = np.std(centres, 0).mean()
    assert spread_between > 2 * spread_within


def test_train_tar_of_tars_with_png_impostor_and_cmyk(tmp_path):
    made = synthesize(str(tmp_path), SynthSpec(val_images=10, train_classes=23,
                                               train_per_class=2, width=16, height=12), jobs=1)
    outer = members(made["imagenet-train"])
    assert len(outer) == 23 and all(n.endswith(".tar") for n in outer)
    inner = {}
    for wnid_tar, data in outer.items():
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            for m in tf:
                assert m.name.startswith(wnid_tar.removesuffix(".tar") + "_")
                inner[m.name] = tf.extractfile(m).read()
    assert Image.open(io.BytesIO(inner[PNG_IMPOSTOR])).format == "PNG"
    for name in CMYK_TRAIN:
        assert Image.open(io.BytesIO(inner[f"{name}.JPEG"])).mode == "CMYK"
    kaggle = tmp_path / "kaggle"
    assert (kaggle / "ILSVRC/Data/CLS-LOC/train" / PNG_IMPOSTOR.split("_")[0] /
            PNG_IMPOSTOR).read_bytes() == inner[PNG_IMPOSTOR]
    solution = (kaggle / "LOC_val_solution.csv").read_text().splitlines()
    assert solution[0] == "ImageId,PredictionString"
    assert solution[1].startswith("ILSVRC2012_val_00000001,n01751748 ")  # caffe label 65


def test_killing_the_generator_leaves_no_worker_running(tmp_path):
    """The generator's pool workers watch it as a build's do: SIGKILLed mid-render, it
    takes them along (before, they stayed, blocked for ever sending back a chunk)."""
    import subprocess
    import sys
    import time

    import psutil

    code = ("from dataset_registry.domains.imagenet.synth import SynthSpec, synthesize\n"
            "if __name__ == '__main__':\n"
            f"    synthesize({str(tmp_path)!r}, SynthSpec(val_images=200_000, train_classes=1,"
            " train_per_class=1, width=16, height=12, kaggle=False), jobs=2)\n")
    script = tmp_path / "generate.py"
    script.write_text(code)
    proc = subprocess.Popen([sys.executable, str(script)])
    try:
        deadline = time.monotonic() + 60
        workers: list = []
        while time.monotonic() < deadline and len(workers) < 2:
            # the pool's workers: children of the fork server, a child of the generator
            workers = [g for c in psutil.Process(proc.pid).children() for g in c.children()]
            time.sleep(0.05)
        assert len(workers) >= 2, "the generator's pool never started"
        time.sleep(0.5)  # rendering
        proc.kill()
        proc.wait()
        _, alive = psutil.wait_procs(workers, timeout=5)
        for p in alive:
            p.kill()
        assert alive == []
    finally:
        proc.kill()
