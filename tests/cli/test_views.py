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


def test_the_views_run_without_the_cycle_collector_and_main_gives_it_back(project, capsys,
                                                                         monkeypatch):
    """cli.main turns the cycle collector off while a command starts (what it makes then
    lives as long as the process) and through a view's full path; another command's work
    runs with it, and main leaves it as it found it (an in-process caller keeps its own)."""
    import gc

    from dataset_registry import cli

    passes: list[int] = []
    inside = [False]  # counted as the command runs: not main's own few lines around it
    dispatch = cli._dispatch

    def counted_dispatch(*args: object) -> int | None:
        inside[0] = True
        try:
            return dispatch(*args)  # type: ignore[arg-type]
        finally:
            inside[0] = False

    def count(phase: str, info: dict) -> None:
        if phase == "start" and inside[0]:
            passes.append(info["generation"])

    monkeypatch.setattr(cli, "_dispatch", counted_dispatch)

    threshold = gc.get_threshold()
    gc.set_threshold(1)  # a pass at every allocation the collector is on for
    gc.callbacks.append(count)
    try:
        for argv in (("show", SPLIT), ("lineage", TINY), ("list",)):
            ANSWERS.unlink(missing_ok=True)  # the full path, not a replay
            assert run(capsys, *argv)[0] == 0, argv
            assert passes == [], argv
            assert gc.isenabled()
        assert run(capsys, "source", "show")[0] == 0
        assert passes, "source show's work ran without the collector"
        gc.disable()
        passes.clear()
        assert run(capsys, "source", "show")[0] == 0
        assert passes == [] and not gc.isenabled()  # left off, as the caller had it
    finally:
        gc.callbacks.remove(count)
        gc.set_threshold(*threshold)
        gc.enable()


def test_a_view_run_as_the_process_command_line_leaves_its_objects_to_the_exit(project, capsys,
                                                                               monkeypatch):
    """main() of the process's own command line (argv None: the `registry` script) freezes
    a view's objects as it returns, so the interpreter's exit does not collect them (and
    a resolve's and a source command's: the test after this one); an in-process caller
    (argv given), a failure and the other commands keep a collectable heap."""
    import gc

    from dataset_registry import cli

    assert gc.get_freeze_count() == 0
    try:
        for argv in (["show", SPLIT], ["list"]):
            assert run(capsys, *argv)[0] == 0
            assert gc.get_freeze_count() == 0, argv  # argv given: not the process's line
        monkeypatch.setattr("sys.argv", ["registry", "sql", "SELECT 1"])
        assert cli.main() == 0
        assert gc.get_freeze_count() == 0
        monkeypatch.setattr("sys.argv", ["registry", "show", "no-such-dataset"])
        assert cli.main() == 2
        assert gc.get_freeze_count() == 0
        for argv in (["show", SPLIT], ["lineage", TINY]):
            ANSWERS.unlink(missing_ok=True)  # the full path, then its replay
            for _ in range(2):
                monkeypatch.setattr("sys.argv", ["registry", *argv])
                assert cli.main() == 0
                assert gc.get_freeze_count() > 0, argv
                gc.unfreeze()
        assert SPLIT in capsys.readouterr().out
    finally:
        gc.unfreeze()


def test_a_build_or_a_source_command_as_the_process_command_line_leaves_its_objects_to_the_exit(
        project, capsys, monkeypatch):
    """`resolve` and `source` end as a view does (a script waiting for the build's end waits
    for the exit too): their objects frozen as main returns, only as the process's line."""
    import gc

    from dataset_registry import cli

    try:
        for argv in (["resolve", TINY], ["source", "check", "my-images"]):
            monkeypatch.setattr("sys.argv", ["registry", *argv])
            assert cli.main() == 0, argv
            assert gc.get_freeze_count() > 0, argv
            gc.unfreeze()
            assert run(capsys, *argv)[0] == 0
            assert gc.get_freeze_count() == 0, argv
    finally:
        gc.unfreeze()
