"""Class-folder order, the refusals every shard recipe shares, and byclass."""

import io
import os
from pathlib import Path

import pytest
from PIL import Image

from dataset_registry import BadInputError
from dataset_registry.members import read_member
from dataset_registry.sources import member_sets

from ..conftest import make_train_tar
from .shardkit import TRUTH, WNIDS, registry


def test_a_missing_class_is_refused(tmp_path, synth_small):
    reg = registry(tmp_path, synth_small, "recordio", "")
    with pytest.raises(BadInputError, match=r"997 of the 1000 classes are missing or empty .*"
                                            r"im2rec would silently shift every later label"):
        reg.resolve("out")
    assert list(reg.store.committed()) == []


def test_an_empty_class_tar_is_refused(tmp_path):
    jpeg = io.BytesIO()
    Image.new("RGB", (8, 8)).save(jpeg, "JPEG")
    classes = {w: {f"{w}_1.JPEG": jpeg.getvalue()} for w in WNIDS}
    classes[WNIDS[5]] = {}
    tar = make_train_tar(tmp_path / "train.tar", classes)
    reg = registry(tmp_path, {"imagenet-train": str(tar)}, "recordio", "")
    with pytest.raises(BadInputError, match=rf"1 of the 1000 classes are missing or empty "
                                            rf"\(first: {WNIDS[5]}\)"):
        reg.resolve("out")


def test_byclass_val_is_an_image_folder(tmp_path, synth_small):
    reg = registry(tmp_path, synth_small, "byclass", "split: val, require_all_classes: false")
    ds = reg.resolve("out", jobs=2)
    files = sorted(p.relative_to(ds.path).as_posix() for p in Path(ds.path).glob("*/*"))
    assert len(files) == 600
    for rel in files:
        wnid, name = rel.split("/")
        assert WNIDS[int(TRUTH[name])] == wnid
    val = member_sets(reg.resolver.source_info("val"))["val"]
    sample = files[17].split("/")[1]
    assert (Path(ds.path) / files[17]).read_bytes() == read_member(val.get(sample))
    assert os.path.exists(Path(ds.path) / "_files.parquet")




def test_the_image_extension_test_is_im2recs():
    import os
    import random

    from dataset_registry.recipes.shards import IM2REC_EXTS, _im2rec_image

    rnd = random.Random(7)
    names = ["a/b.JPEG", "a/.jpg", "a/..jpg", "a/x..jpg", "x.png", ".png", "a/b.jpeg.txt",
             "n1/IMG.JpG", "n1/noext", "n1/a.", "...jpg", "dir.jpg/file"]
    names += ["".join(rnd.choice("ab./JPGjpgnex") for _ in range(rnd.randint(0, 10)))
              for _ in range(5000)]
    for name in names:
        assert _im2rec_image(name) == (os.path.splitext(name)[1].lower() in IM2REC_EXTS), name


def test_string_columns_gather_like_slicing():
    import numpy as np

    from dataset_registry.members import StrColumn

    words = ["val/a", "val/bé", "val/", "val/long name.JPEG", "val/x"]
    col = StrColumn.from_list(words)
    prefixed = StrColumn(col._blob, col._starts, 4)  # how a split strips "val/"
    picked = [3, 0, 2, 3]
    assert prefixed.take(np.array(picked)).tolist() == [words[i][4:] for i in picked]
    assert prefixed.lines().decode() == "".join(w[4:] + "\n" for w in words)
    assert prefixed.take(np.array([], dtype=np.int64)).tolist() == []
