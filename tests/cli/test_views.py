"""`show`, `lineage` and `list` bind only the datasets they cover to their recipes (cli/views.py,
`Registry(check_recipes=False)`): a misfit is the same one-line error wherever it is used,
and a dataset that does not use it is shown as before."""

from __future__ import annotations

from pathlib import Path

from .clikit import SHARDS, SPLIT, TINY, run

ANSWERS = Path(".registry-state") / "answers.json"


def test_a_misfit_stops_the_views_that_use_it_and_only_those(project, capsys):
    manifest = project / "manifests" / "my-images.yaml"
    shown = {argv: run(capsys, *argv) for argv in (("show", SPLIT), ("lineage", TINY))}
    assert all(code == 0 and out and err == "" for code, out, err in shown.values())
    text = manifest.read_text()
    shards = "    params: {split: train}\n    tags: [mine, webdataset]"  # my-images-shards'
    assert text.count(shards) == 1
    manifest.write_text(text.replace(shards, shards.replace("train", "7")))
    line = text[:text.index(shards)].count("\n") + 1
    remembered = ANSWERS.read_bytes()

    misfit = (f"registry: error: manifests/my-images.yaml:{line}: datasets[2].params.split "
              f"({SHARDS}): Input should be a valid string\n")
    for argv in (("show", SHARDS), ("lineage", SHARDS), ("list",), ("show", SHARDS, "--json")):
        assert run(capsys, *argv) == (2, "", misfit), argv
        assert ANSWERS.read_bytes() == remembered, argv  # an error is never remembered
    # what does not read the misfit is answered as before the edit (not refused for it)
    for argv, before in shown.items():
        assert run(capsys, *argv) == before, argv
