"""The README's "bring your own images" walk-through, as a new user runs it, on real data
nobody here made: the 1,797 UCI handwritten digits as class folders, and again as a tar
with a metadata.csv. Every label is checked against the digits' own CSV."""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from .conftest import run_cli
from .realkit import digit_name, digits, write_digit_folders, write_digit_tar


def cli(project: Path, *args: str) -> str:
    out = run_cli(*args, cwd=project, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    return out.stdout


def largest_remainder(count: int, fractions: dict[str, float]) -> dict[str, int]:
    from fractions import Fraction

    exact = {s: Fraction(f).limit_denominator(1000) * count for s, f in fractions.items()}
    floors = {s: int(v) for s, v in exact.items()}
    left = count - sum(floors.values())
    for s in sorted(exact, key=lambda s: (-(exact[s] - floors[s]), s))[:left]:
        floors[s] += 1
    return floors


@pytest.fixture(scope="module")
def walked_through(tmp_path_factory) -> Path:
    """`registry init`, point the source at the class folders, resolve the three variants."""
    root = tmp_path_factory.mktemp("byo")
    project = root / "project"
    cli(root, "init", str(project))
    folders = write_digit_folders(root / "my-images")
    cli(project, "source", "set", "my-images", str(folders))
    for name in ("my-images-split", "my-images-32x32", "my-images-shards"):
        cli(project, "resolve", name, "--jobs", "2")
    return project


def path_of(project: Path, name: str) -> Path:
    return Path(cli(project, "path", name).strip())


def test_the_split_is_stratified_and_byte_exact(walked_through):
    split = path_of(walked_through, "my-images-split")
    _, labels = digits()
    per_class = Counter(int(v) for v in labels)
    seen = {}
    for path in sorted(split.glob("*/*/*.png")):
        out_split, label = path.parts[-3], path.parts[-2]
        i = int(path.stem.split("-")[1])
        assert label == str(labels[i]), path  # the folder is the CSV's label
        seen[i] = out_split
        source = walked_through.parent / "my-images" / label / digit_name(i)
        assert path.read_bytes() == source.read_bytes()
    assert sorted(seen) == list(range(1797))  # every digit once
    for label, count in per_class.items():
        want = largest_remainder(count, {"train": 0.8, "val": 0.2})
        got = Counter(seen[i] for i in range(1797) if labels[i] == label)
        assert dict(got) == want, label


def test_the_shards_read_back_with_the_webdataset_package(walked_through):
    import webdataset as wds

    shards = sorted(path_of(walked_through, "my-images-shards").glob("*.tar"))
    assert shards and shards[0].name == "my-images-shards-000000.tar"
    _, labels = digits()
    split = path_of(walked_through, "my-images-split")
    train = {int(p.stem.split("-")[1]) for p in split.glob("train/*/*.png")}
    got = {}
    for sample in wds.WebDataset([str(s) for s in shards], shardshuffle=False):
        i = int(sample["__key__"].rsplit("-", 1)[1])
        assert int(sample["cls"]) == labels[i]  # sorted names 0..9: label == digit
        assert Image.open(io.BytesIO(sample["png"])).size == (8, 8)
        got[i] = True
    assert set(got) == train


def test_the_downscale_keeps_the_labels(walked_through):
    tiny = path_of(walked_through, "my-images-32x32")
    _, labels = digits()
    for split in ("train", "val"):
        x = np.load(tiny / split / "images.npy")
        y = np.load(tiny / split / "labels.npy")
        members = (tiny / split / "members.txt").read_text().split()
        assert x.shape == (len(members), 32, 32, 3) and x.dtype == np.uint8
        want = [labels[int(Path(m).stem.split("-")[1])] for m in members]
        assert y.tolist() == want


def test_provenance_reaches_every_file_in_sql(walked_through):
    out = cli(walked_through, "sql", "--format", "json",
              "SELECT count(*) AS n, count(DISTINCT class) AS classes FROM files f "
              "JOIN artifacts a USING (key) "
              "WHERE a.name = 'my-images-split' AND f.member IS NOT NULL")
    assert json.loads(out) == [{"n": 1797, "classes": 10}]


def test_a_tar_with_a_metadata_csv_gives_the_same_labels(tmp_path):
    project = tmp_path / "project"
    cli(tmp_path, "init", str(project))
    manifest = project / "manifests" / "my-images.yaml"
    manifest.write_text(manifest.read_text().replace("layout: image-folder", "layout: files"))
    tar = write_digit_tar(tmp_path / "digits.tar")
    cli(project, "source", "set", "my-images", str(tar))
    cli(project, "resolve", "my-images-split", "--jobs", "2")
    split = path_of(project, "my-images-split")
    _, labels = digits()
    files = sorted(split.glob("*/*/*.png"))
    assert len(files) == 1797
    for path in files:
        assert path.parts[-2] == str(labels[int(path.stem.split("-")[1])])


def test_recordio_of_a_split_reads_back(walked_through):
    from dataset_registry.formats.recordio import iter_records, unpack_image

    manifest = walked_through / "manifests" / "extra.yaml"
    manifest.write_text("datasets:\n  - name: my-images-rec\n    recipe: recordio\n"
                        "    inputs: {images: my-images-split}\n    params: {split: val}\n")
    cli(walked_through, "resolve", "my-images-rec", "--jobs", "2")
    rec = path_of(walked_through, "my-images-rec")
    _, labels = digits()
    lst = [line.split("\t") for line in (rec / "val.lst").read_text().splitlines()]
    with open(rec / "val.rec", "rb") as f:
        records = [unpack_image(payload) for _, payload in iter_records(f)]
    assert len(records) == len(lst) > 300
    for (index, label, path), (header, _, image) in zip(lst, records, strict=True):
        i = int(Path(path).stem.split("-")[1])
        assert float(label) == header.label == labels[i] and int(index) == header.id
        assert Image.open(io.BytesIO(image)).size == (8, 8)


def readme_walkthrough() -> list[list[str]]:
    """The `registry` commands of the README's "Bring your own images" block, as written
    (`cd` kept; the install line left to the test's own environment)."""
    import re
    import shlex

    text = (Path(__file__).parents[1] / "README.md").read_text()
    block = re.search(r"## Bring your own images.*?```bash\n(.*?)```", text, re.S).group(1)
    commands, pending = [], ""
    for line in block.splitlines():
        pending += line + "\n"
        try:
            words = shlex.split(pending, comments=True)
        except ValueError:  # an open quote: the command goes on
            continue
        pending = ""
        if words and words[0] != "pip":
            commands.append(words)
    return commands


def test_the_readme_walkthrough_on_files_numbered_per_class(tmp_path):
    """`pets/cat/0001.jpg`, `pets/dog/0001.png`, ... (the README's own example: files
    numbered per class), through the README's commands as written."""
    import webdataset as wds

    images, labels = digits()
    pets = tmp_path / "pets"
    made: dict[str, bytes] = {}
    for klass, digit, ext in (("cat", 3, "jpg"), ("dog", 7, "png")):
        (pets / klass).mkdir(parents=True)
        for n, i in enumerate(np.flatnonzero(labels == digit)[:30], 1):
            buf = io.BytesIO()
            Image.fromarray(images[i]).convert("RGB").save(buf, format="JPEG" if ext == "jpg"
                                                           else "PNG")
            made[f"{klass}/{n:04d}"] = buf.getvalue()
            (pets / klass / f"{n:04d}.{ext}").write_bytes(buf.getvalue())
    cwd = tmp_path
    commands = readme_walkthrough()
    assert [c[:2] for c in commands] == [
        ["registry", "init"], ["cd", "my-project"], ["registry", "source"],
        ["registry", "resolve"], ["registry", "resolve"], ["registry", "resolve"],
        ["registry", "sql"]]
    for words in commands:
        if words[0] == "cd":
            cwd = cwd / words[1]
            continue
        words = [str(pets) if w == "/data/pets" else w for w in words]
        out = cli(cwd, *words[1:])
    assert out.splitlines()[1:] == ["cat\t30", "dog\t30"]  # the split holds every image
    project = tmp_path / "my-project"
    shards = sorted(path_of(project, "my-images-shards").glob("*.tar"))
    keys = {}
    for sample in wds.WebDataset([str(s) for s in shards], shardshuffle=False):
        image = sample.get("jpg") or sample.get("png")
        assert image == made[sample["__key__"]]  # the key names the very file
        keys[sample["__key__"]] = int(sample["cls"])
    assert len(keys) == 48 and {k.split("/")[0] for k in keys} == {"cat", "dog"}
    assert all(label == (0 if key.startswith("cat/") else 1) for key, label in keys.items())
    # the README's query counts the split as built now, not every build it ever had
    (pets / "cat" / "0001.jpg").unlink()
    cli(project, "resolve", "my-images-split")
    sql = next(words for words in commands if words[:2] == ["registry", "sql"])
    assert cli(project, *sql[1:]).splitlines()[1:] == ["cat\t29", "dog\t30"]
