"""The CK / MLPerf calibration variants on a synthetic 50,000-image val set."""

from pathlib import Path

import pytest

from dataset_registry.sources.index import member_sets
from dataset_registry.sources.members import read_member

from ...conftest import LABELS, LISTS, make_registry

FULL = ["first.500", "mlperf.option1", "mlperf.option2", "first.1", "first.5", "first.1.dup.5"]
MIN = ["all.500", "first.500", "first.1", "first.5", "first.1.dup.5"]


@pytest.fixture(scope="module")
def built(synth_full, tmp_path_factory):
    reg = make_registry(tmp_path_factory.mktemp("calibration"))
    reg.set_source("imagenet2012-val", synth_full["imagenet-val"])
    names = [f"imagenet-calibration-{o}" for o in FULL] + \
        [f"imagenet-min-calibration-{o}" for o in MIN]
    return reg, {name: reg.resolve(name, jobs=2) for name in names}


def val_map(ds) -> str:
    return (Path(ds.path) / "val_map.txt").read_text()


def images(ds) -> list[str]:
    return sorted(p.name for p in Path(ds.path).glob("*.JPEG"))


def test_option1_holds_exactly_the_listed_files_and_intels_labels(built):
    _, ds = built
    opt1 = ds["imagenet-calibration-mlperf.option1"]
    listed = (LISTS / "mlperf_cal_image_list_option_1.txt").read_text().split()
    assert images(opt1) == sorted(listed) and len(listed) == 500
    expected = (LISTS / "intel_converted_mlperf_list.txt").read_text()  # byte copy, see SOURCES
    assert val_map(opt1) == expected


def test_option2_val_map_equals_its_list(built):
    _, ds = built
    opt2 = ds["imagenet-calibration-mlperf.option2"]
    assert val_map(opt2) == (LISTS / "mlperf_cal_image_list_option_2.txt").read_text()
    assert len(images(opt2)) == 500


def test_first_500_equals_caffe_head(built):
    _, ds = built
    head = (LABELS / "caffe_val.txt").read_text().splitlines(keepends=True)[:500]
    assert val_map(ds["imagenet-calibration-first.500"]) == "".join(head)
    assert val_map(ds["imagenet-calibration-first.5"]) == "".join(head[:5])
    assert val_map(ds["imagenet-calibration-first.1"]) == head[0]


def test_first_1_dup_5_is_one_image_five_lines(built):
    _, ds = built
    for name in ("imagenet-calibration-first.1.dup.5", "imagenet-min-calibration-first.1.dup.5"):
        assert images(ds[name]) == ["ILSVRC2012_val_00000001.JPEG"]
        assert val_map(ds[name]) == "ILSVRC2012_val_00000001.JPEG 65\n" * 5


def test_all_500_on_min_and_first_500_on_full_share_a_digest(built):
    _, ds = built
    full, mini = ds["imagenet-calibration-first.500"], ds["imagenet-min-calibration-all.500"]
    assert full.digest == mini.digest
    assert full.key != mini.key
    assert ds["imagenet-min-calibration-first.500"].digest == mini.digest


def test_images_are_byte_identical_to_the_source_members(built, synth_full):
    reg, ds = built
    refs = member_sets(reg.resolver.source_info("imagenet2012-val"))["val"]
    for name in ("imagenet-calibration-mlperf.option1", "imagenet-min-calibration-first.5"):
        for path in Path(ds[name].path).glob("*.JPEG"):
            assert path.read_bytes() == read_member(refs.get(path.name))


def test_file_table_traces_every_image_to_the_raw_source(built):
    reg, ds = built
    fingerprint = reg.key("imagenet2012-val")
    truth = dict(line.split() for line in (LABELS / "caffe_val.txt").read_text().splitlines())
    for name in ("imagenet-calibration-mlperf.option2", "imagenet-min-calibration-all.500"):
        rows = ds[name].files().fetchall()
        jpeg_rows = [r for r in rows if r[0].endswith(".JPEG")]
        assert len(jpeg_rows) == 500
        for path, size, _xxh3, label, source, member, offset, record, klass, attrs in jpeg_rows:
            assert member == path and source == fingerprint
            assert klass is None and attrs is None  # ImageNet val names no class
            assert label == int(truth[path]) and offset is None and record is None
            assert size == (Path(ds[name].path) / path).stat().st_size
        assert ds[name].marker.synthetic is True
