"""`sample` on the real UCI digits: seeded draws and stratified splits, byte-exact, the
same on any worker count, and each split readable by another dataset."""

from __future__ import annotations

import random
from collections import Counter
from fractions import Fraction
from pathlib import Path

import pytest

from dataset_registry import BadInputError, ManifestError, Registry
from dataset_registry.recipes.sample import largest_remainder

from ..conftest import make_tar, run_cli, write_manifest
from ..realkit import digit_name, digits, png, write_digit_folders

SOURCE = """
sources:
  - {name: digits, layout: image-folder}
datasets:
"""


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> Path:
    return write_digit_folders(tmp_path_factory.mktemp("digits") / "data")


def setup(root: Path, folders: Path, datasets: str) -> Registry:
    write_manifest(root, SOURCE + datasets)
    reg = Registry.open(str(root))
    reg.set_source("digits", str(folders))
    return reg


SPLIT = """
  - name: split
    recipe: sample
    inputs: {images: digits}
    params: {seed: 7, splits: {train: 0.8, val: 0.2}}
"""


def expected_counts(fractions: dict[str, Fraction]) -> dict[str, Counter]:
    """Largest remainder per class, exactly (Fractions), from the CSV's labels."""
    _, labels = digits()
    want: dict[str, Counter] = {s: Counter() for s in fractions}
    for digit, count in Counter(int(v) for v in labels).items():
        exact = {s: count * f for s, f in fractions.items()}
        floors = {s: int(x) for s, x in exact.items()}
        for s in sorted(fractions, key=lambda s: (floors[s] - exact[s], s))[
                :count - sum(floors.values())]:
            floors[s] += 1
        for s in fractions:
            want[s][str(digit)] = floors[s]
    return want


def tree(root: Path) -> dict[str, Path]:
    """split/class/file -> path of every image the artifact holds."""
    return {p.relative_to(root).as_posix(): p for p in root.rglob("*")
            if p.is_file() and "/" in p.relative_to(root).as_posix()}


def test_stratified_split_is_exact_byte_identical_and_labelled(tmp_path, folders):
    reg = setup(tmp_path, folders, SPLIT)
    ds = reg.resolve("split", jobs=2)
    files = tree(Path(ds.path))
    assert len(files) == 1797 == ds.marker.files - 1  # and classes.txt
    assert ds.marker.splits == ("train", "val")
    _, labels = digits()
    got: dict[str, Counter] = {"train": Counter(), "val": Counter()}
    seen = set()
    for rel, path in files.items():
        split, klass, name = rel.split("/")
        index = int(name.removeprefix("digit-").removesuffix(".png"))
        assert klass == str(labels[index]), rel  # folder = the CSV's label
        assert path.read_bytes() == (folders / klass / name).read_bytes(), rel
        got[split][klass] += 1
        seen.add(index)
    assert seen == set(range(1797))  # each digit once, in one split
    assert got == expected_counts({"train": Fraction(4, 5), "val": Fraction(1, 5)})
    assert (Path(ds.path) / "classes.txt").read_text() == "".join(f"{d}\n" for d in range(10))
    rows = ds.files().fetchall()
    columns = ds.files().columns
    for row in rows:
        row = dict(zip(columns, row, strict=True))
        if row["path"] == "classes.txt":
            continue
        klass = row["path"].split("/")[1]
        assert row["class"] == klass and row["label"] == int(klass)
        assert row["member"] == row["path"].split("/", 1)[1]  # the source member it copies


def test_same_digest_on_one_and_two_workers_and_the_seed_changes_it(tmp_path, folders):
    datasets = SPLIT + """
  - name: other-seed
    recipe: sample
    inputs: {images: digits}
    params: {seed: 8, splits: {val: 0.2, train: 0.8}}
"""
    one = setup(tmp_path / "a", folders, datasets).resolve("split", jobs=1)
    two_reg = setup(tmp_path / "b", folders, datasets)
    two = two_reg.resolve("split", jobs=2)
    assert one.key == two.key and one.digest == two.digest
    other = two_reg.resolve("other-seed", jobs=2)
    assert other.digest != two.digest
    assert Counter(p.split("/")[0] for p in tree(Path(other.path))) == \
        Counter(p.split("/")[0] for p in tree(Path(two.path)))  # same counts, other draw


def test_n_draws_from_the_sorted_names_with_the_seed(tmp_path, folders):
    reg = setup(tmp_path, folders, """
  - name: some
    recipe: sample
    inputs: {images: digits}
    params: {n: 100, seed: 3}
""")
    ds = reg.resolve("some", jobs=1)
    files = tree(Path(ds.path))
    _, labels = digits()
    names = sorted(f"{label}/{digit_name(i)}" for i, label in enumerate(labels))
    want = {f"train/{names[i]}" for i in random.Random(3).sample(range(len(names)), 100)}
    assert set(files) == want
    for rel, path in files.items():
        assert path.read_bytes() == (folders / rel.removeprefix("train/")).read_bytes()
    assert ds.marker.splits == ("train",)


def test_per_class_takes_n_of_each_and_splits_them(tmp_path, folders):
    reg = setup(tmp_path, folders, """
  - name: ten
    recipe: sample
    inputs: {images: digits}
    params: {per_class: 10, splits: {a: 0.5, b: 0.5}}
  - name: short
    recipe: sample
    inputs: {images: digits}
    params: {per_class: 200}
  - name: short-kept
    recipe: sample
    inputs: {images: digits}
    params: {per_class: 200, short_classes: keep}
""")
    files = tree(Path(reg.resolve("ten", jobs=1).path))
    assert Counter(tuple(p.split("/")[:2]) for p in files) == \
        {(s, str(d)): 5 for s in "ab" for d in range(10)}
    _, labels = digits()
    zeros = Counter(int(v) for v in labels)[0]  # '0' is the first class asked, and short
    with pytest.raises(BadInputError, match=rf"test.yaml:\d+: short: source digits \(.*\): "
                                            rf"class '0' has {zeros} images, fewer than "
                                            r"per_class: 200 \(set short_classes: keep"):
        reg.resolve("short")
    assert len(tree(Path(reg.resolve("short-kept").path))) == 1797


def test_a_select_reads_one_split_of_a_built_sample(tmp_path, folders):
    reg = setup(tmp_path, folders, SPLIT + """
  - name: val-five
    recipe: select
    inputs: {images: split}
    params: {split: val, first: 5, folders: true}
  - name: no-such-split
    recipe: select
    inputs: {images: split}
    params: {split: test, first: 5}
""")
    split = Path(reg.resolve("split").path)
    ds = reg.resolve("val-five", jobs=1)
    files = tree(Path(ds.path))
    want = sorted(p.removeprefix("val/") for p in tree(split) if p.startswith("val/"))[:5]
    assert sorted(files) == want
    for rel, path in files.items():
        assert path.read_bytes() == (split / "val" / rel).read_bytes()
    classes = {r[0]: r[1] for r in ds.files().select("path, class").fetchall()}
    assert classes == {p: p.split("/")[0] for p in want}
    with pytest.raises(BadInputError, match=r"test.yaml:\d+: no-such-split: input 'images' "
                                            r"\(dataset split .*\) has no split 'test' \(it "
                                            r"has: \*, train, val\)"):
        reg.resolve("no-such-split")


def test_bad_inputs_name_the_dataset(tmp_path, folders):
    images, _ = digits()  # as ImageNet val names them: flat, no classes
    flat = make_tar(tmp_path / "val.tar", {f"ILSVRC2012_val_{i:08d}.JPEG": png(images[i])
                                           for i in range(1, 5)})
    write_manifest(tmp_path, """
sources:
  - {name: digits, layout: image-folder}
  - {name: flat, layout: imagenet-val}
datasets:
  - {name: wrong-split, recipe: sample, inputs: {images: digits}, params: {split: val, n: 5}}
  - {name: too-many, recipe: sample, inputs: {images: digits}, params: {n: 1798}}
  - {name: no-classes, recipe: sample, inputs: {images: flat}, params: {split: val, per_class: 1}}
  - {name: unlabelled-n, recipe: sample, inputs: {images: flat}, params: {split: val, n: 2}}
""")
    reg = Registry.open(str(tmp_path))
    reg.set_source("digits", str(folders))
    reg.set_source("flat", str(flat))
    with pytest.raises(BadInputError, match=r"test.yaml:6: wrong-split: input 'images' "
                                            r"\(source digits .*\) has no split 'val' \(it "
                                            r"has: train\)"):
        reg.resolve("wrong-split")
    with pytest.raises(BadInputError, match=r"test.yaml:7: too-many: source digits .*: n: 1798 "
                                            r"asked for, but it holds only 1797 images"):
        reg.resolve("too-many")
    with pytest.raises(BadInputError, match=r"test.yaml:8: no-classes: source flat .*: "
                                            r"its images carry no class names \("
                                            r"'ILSVRC2012_val_00000001.JPEG' has none\), "
                                            r"which per_class"):
        reg.resolve("no-classes")
    assert list(reg.store.committed()) == []
    ds = reg.resolve("unlabelled-n", jobs=1)  # n alone needs no classes
    assert len(tree(Path(ds.path))) == 2 and not (Path(ds.path) / "classes.txt").exists()


@pytest.mark.parametrize(("params", "message"), [
    ("{splits: {train: 0.8, val: 0.3}}", r"params.splits \(bad\): .*sum to 1.1, not 1"),
    ("{n: -3}", r"params.n \(bad\): Input should be greater than 0"),
    ("{n: 5, per_class: 2}", r"params \(bad\): .*give n .* or per_class .*, not both"),
    ("{seed: 1}", r"params \(bad\): .*give n, per_class or splits"),
    ("{splits: {train: 1.0, _files: 0.0}}", r"params.splits \(bad\): .*'_files' is not a "
                                            r"split name"),
    ("{splits: {train: 0.5, val: 0.5}, sed: 1}", r"params.sed \(bad\): unknown field"),
    ("{splits: {train: 0.5, meta: 0.5}}", r"params.splits \(bad\): .*'meta' is not a split "
                                          r"name"),
    ("{splits: {train: 0.5, '..': 0.5}}", r"params.splits \(bad\): .*'\.\.' cannot be a "
                                          r"folder name"),
    ('{splits: {train: 0.5, "a\\tb": 0.5}}', r"params.splits \(bad\): .*holds a tab"),
    ("{n: 5, duplicates: together}", r"params \(bad\): .*duplicates: together keeps exact "
                                     r"copies on one side of a split; give splits too"),
    ("{splits: {a: 1.0}, duplicates: apart}", r"params.duplicates \(bad\): Input should be "
                                              r"'any' or 'together'"),
])
def test_bad_params_are_refused_at_their_manifest_line(tmp_path, params, message):
    write_manifest(tmp_path, f"""
sources:
  - {{name: digits, layout: image-folder}}
datasets:
  - name: bad
    recipe: sample
    inputs: {{images: digits}}
    params: {params}
""")
    with pytest.raises(ManifestError, match=rf"test.yaml:8: datasets\[0\]\.{message}"):
        Registry.open(str(tmp_path)).manifests  # noqa: B018


def test_through_the_cli(tmp_path, folders):
    write_manifest(tmp_path, SOURCE + SPLIT)
    env = {"DATASET_REGISTRY_MANIFESTS": str(tmp_path / "manifests")}
    assert run_cli("source", "set", "digits", str(folders), cwd=tmp_path, env=env).returncode == 0
    done = run_cli("resolve", "split", "--jobs", "2", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    out = Path(done.stdout.strip().splitlines()[-1])
    assert len(tree(out)) == 1797
    write_manifest(tmp_path, SOURCE + SPLIT.replace("0.2}", "0.25}"))
    bad = run_cli("resolve", "split", cwd=tmp_path, env=env)
    assert bad.returncode == 2
    assert "test.yaml:9: datasets[0].params.splits (split): " in bad.stderr
    assert "sum to 1.05, not 1" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize(("count", "fractions", "want"), [
    (180, {"train": 0.8, "val": 0.2}, {"train": 144, "val": 36}),
    (7, {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}, {"a": 3, "b": 2, "c": 2}),  # tie: earlier name
    (3, {"train": 0.9, "val": 0.1}, {"train": 2, "val": 1}),  # val would get none: it takes one
    (1, {"a": 0.5, "b": 0.5}, {"a": 1, "b": 0}),  # too few for every split
    (0, {"a": 0.5, "b": 0.5}, {"a": 0, "b": 0}),
])
def test_largest_remainder(count, fractions, want):
    assert largest_remainder(count, fractions) == want


def test_a_classes_file_sets_the_labels_and_must_hold_every_class(tmp_path, folders):
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "reversed.txt").write_text(
        "".join(f"{d}\n" for d in range(9, -1, -1)))
    (tmp_path / "manifests" / "short.txt").write_text("".join(f"{d}\n" for d in range(9)))
    reg = setup(tmp_path, folders, """
  - name: one-each
    recipe: sample
    inputs: {images: digits, classes: reversed.txt}
    params: {per_class: 1}
  - name: lacking
    recipe: sample
    inputs: {images: digits, classes: short.txt}
    params: {per_class: 1}
""")
    ds = reg.resolve("one-each", jobs=1)
    assert (Path(ds.path) / "classes.txt").read_text() == \
        (tmp_path / "manifests" / "reversed.txt").read_text()
    labels = dict(ds.files().select("class, label").fetchall())
    assert labels == {str(d): 9 - d for d in range(10)} | {None: None}
    with pytest.raises(BadInputError, match=r"test.yaml:\d+: lacking: source digits .*: "
                                            r"'9/digit-\d{4}.png' is of class '9', which "
                                            r".*short.txt lacks"):
        reg.resolve("lacking")


def test_a_split_that_would_be_empty_is_refused_not_built(tmp_path):
    """Three classes of one image each, split 80/20: every image goes to train, so val
    would be an empty split that datasets built from it read as nothing."""
    from ..realkit import digits, png

    images, _ = digits()
    for i, klass in enumerate(("a", "b", "c")):
        (tmp_path / "data" / klass).mkdir(parents=True)
        (tmp_path / "data" / klass / "x.png").write_bytes(png(images[i]))
    write_manifest(tmp_path, """
sources:
  - {name: digits, layout: image-folder}
datasets:
  - {name: tiny, recipe: sample, inputs: {images: digits}, params: {splits: {train: 0.8,
     val: 0.2}}}
""")
    reg = Registry.open(str(tmp_path))
    reg.set_source("digits", str(tmp_path / "data"))
    with pytest.raises(BadInputError, match=r"tiny: source digits .*: split 'val' would be "
                                            r"empty: 3 images drawn"):
        reg.resolve("tiny", jobs=1)
    assert list(reg.store.committed()) == []


def test_duplicates_together_keeps_exact_copies_in_one_split(tmp_path, folders):
    """60 digits copied byte for byte (20 into another class): drawn as usual, copies land
    on both sides; with `duplicates: together` every copy goes where the first went, and
    the param at its default keeps the key (and so the bytes) of every existing manifest."""
    import shutil

    from dataset_registry.recipes.sample import SampleParams

    data = tmp_path / "data"
    shutil.copytree(folders, data)
    _, labels = digits()
    for i in range(0, 1200, 20):
        into = str(labels[i]) if i % 60 else str((labels[i] + 1) % 10)
        shutil.copyfile(folders / str(labels[i]) / digit_name(i), data / into / f"copy-{i}.png")
    reg = setup(tmp_path, data, SPLIT + SPLIT.replace("name: split", "name: together").replace(
        "0.2}}", "0.2}, duplicates: together}"))
    split, together = (reg.resolve(name, jobs=1) for name in ("split", "together"))
    assert "duplicates" not in SampleParams(splits={"a": 1.0}).keyed()
    assert SampleParams(splits={"a": 1.0}, duplicates="together").keyed()["duplicates"] == \
        "together"

    def sides(root: Path) -> dict[bytes, set[str]]:
        found: dict[bytes, set[str]] = {}
        for rel, path in tree(root).items():
            found.setdefault(path.read_bytes(), set()).add(rel.split("/")[0])
        return found

    assert sum(len(s) > 1 for s in sides(Path(split.path)).values()) >= 5  # split apart
    kept = sides(Path(together.path))
    assert len(kept) == 1797 and all(len(s) == 1 for s in kept.values())
    assert len(tree(Path(together.path))) == 1797 + 60
    counts = Counter(rel.split("/")[0] for rel in tree(Path(together.path)))
    assert abs(counts["val"] - 0.2 * (1797 + 60)) <= 30  # only copies moved
