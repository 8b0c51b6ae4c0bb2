"""The contract on keys: every shipped variant's key, and the content digest of one
variant of each recipe and param shape, for a fixed synthetic source (`synth_full`).

Moving code must never change a row here. A change that must change bytes bumps
its recipe's version and updates the table in the same commit, saying why. The
table was taken before any of the refactors it guards; regenerate it only for
such a deliberate change: `REGISTRY_WRITE_REFERENCE=1 pytest tests/test_reference.py`.

Deliberate changes since the table was first taken:
- recordio 1 -> 2 (keys of both splits): `val.lst`'s path column is `<wnid>/<file>`, as
  im2rec writes it for the valprep'd folder (digest of `-val` changed; train's bytes did not).
- tfrecord 1 -> 2 (keys of both splits): only the reference's own lists (the PNG impostor,
  the 22 CMYK train files) are re-encoded, so `ILSVRC2012_val_00019877.JPEG` keeps its bytes
  (digest of `-validation` changed; train's bytes did not).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from dataset_registry import Registry

from .conftest import MANIFESTS

TABLE = Path(__file__).parent / "fixtures" / "reference.json"

BUILT = [  # one of each recipe and param shape, cheap on 50,000 tiny images
    "imagenet2012-val-min", "imagenet-calibration-first.5", "imagenet-calibration-first.1.dup.5",
    "imagenet-calibration-mlperf.option1", "imagenet-calibration-mlperf.option2",
    "imagenet-min-calibration-all.500",
    "imagenet-tiny-8x8-gray-full", "imagenet-tiny-32x32-srgb-5", "downsampled-imagenet-16x16",
    "imagenet2012-val-byclass", "imagenet2012-train-byclass",
    "mlperf-resnet50-recordio-train", "mlperf-resnet50-recordio-val",
    "imagenet-webdataset-train", "imagenet-webdataset-val",
    "mlperf-resnet50-tfrecord-train", "mlperf-resnet50-tfrecord-validation",
]


@pytest.fixture(scope="module")
def reference_registry(synth_full, tmp_path_factory) -> Registry:
    reg = Registry.open(str(tmp_path_factory.mktemp("reference")), manifests=str(MANIFESTS))
    reg.set_source("imagenet2012-val", synth_full["imagenet-val"])
    reg.set_source("imagenet2012-train", synth_full["imagenet-train"])
    return reg


def _table(reg: Registry) -> dict[str, dict[str, str]]:
    keys = {n.name: reg.key(n.name) for n in reg.manifests.datasets()}
    sources = {name: reg.key(name) for name in ("imagenet2012-val", "imagenet2012-train")}
    digests = {name: reg.resolve(name, jobs=2).digest for name in BUILT}
    return {"sources": sources, "keys": dict(sorted(keys.items())), "digests": digests}


def test_shipped_keys_and_digests_match_the_reference_table(reference_registry):
    got = _table(reference_registry)
    if os.environ.get("REGISTRY_WRITE_REFERENCE") == "1":
        TABLE.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    want = json.loads(TABLE.read_text())
    assert got["sources"] == want["sources"], "the synthetic source itself changed"
    assert set(got["keys"]) == set(want["keys"]), "shipped variants added or removed"
    changed = {n: (want["keys"][n], k) for n, k in got["keys"].items() if want["keys"][n] != k}
    assert not changed, f"keys changed: {changed}"
    changed = {n: (want["digests"][n], d) for n, d in got["digests"].items()
               if want["digests"].get(n) != d}
    assert not changed, f"digests changed: {changed}"
