"""The CLI's conventions (issue 18): --version, help on every option, "did you mean" by
edit distance, the project found from a subfolder, shell completion."""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

import pytest

from dataset_registry import __version__
from dataset_registry.cli.command import load_commands
from dataset_registry.cli.parser import build_parser, json_option
from dataset_registry.errors import did_you_mean

from ..conftest import run_cli
from ..test_cli_plugins import project as plugin_project
from .clikit import SPLIT, run, run_json

# --version ------------------------------------------------------------------------------


def test_version_prints_registry_and_the_version_and_exits_0(tmp_path):
    out = run_cli("--version", cwd=tmp_path)
    assert (out.returncode, out.stdout, out.stderr) == (0, f"registry {__version__}\n", "")


# help on every option -----------------------------------------------------------------


def without_help(parser: argparse.ArgumentParser, prog: str = "registry") -> list[str]:
    """Every argument (option or positional) of `parser` and its subcommands that has no
    help text, as `registry COMMAND --option`."""
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                missing += without_help(sub, f"{prog} {name}")
        elif not isinstance(action, argparse._HelpAction) and not (action.help or "").strip():
            missing.append(f"{prog} {'/'.join(action.option_strings) or action.dest}")
    return missing


def test_every_argument_of_every_command_has_help(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    found, broken = load_commands(".")  # the shipped plugin commands (synth, eval, demo) too
    assert not broken and {"synth", "eval", "demo"} <= set(found)
    assert without_help(build_parser(found)) == []


def test_the_help_walk_finds_an_option_without_help():
    parser = build_parser()
    source = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    nested = next(a for a in source.choices["source"]._actions
                  if isinstance(a, argparse._SubParsersAction))
    nested.choices["check"].add_argument("--bare")
    parser.add_argument("top")
    assert without_help(parser) == ["registry source check --bare", "registry top"]


def test_every_command_that_prints_takes_json():
    """The shared --json (`json_option`) on every core command but those whose output is
    not a report: init's next steps, the card page `report` writes, a rendered job spec
    (YAML), a completion script."""
    def leaves(parser: argparse.ArgumentParser, prog: str) -> dict[str, argparse.ArgumentParser]:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            return {prog: parser}
        return {k: v for name, sub in subs[0].choices.items()
                for k, v in leaves(sub, f"{prog} {name}".strip()).items()}

    found = {name for name, p in leaves(build_parser(), "").items()
             if "--json" in p._option_string_actions}
    everything = set(leaves(build_parser(), ""))
    assert everything - found == {"init", "report", "job render", "job submit", "completion"}
    fresh = argparse.ArgumentParser()
    json_option(fresh)  # what the report commands (diff, audit) call
    assert fresh.parse_args(["--json"]).json and not fresh.parse_args([]).json


# "did you mean" ------------------------------------------------------------------------


def test_a_mistyped_name_suggests_the_closest_names(project, capsys):
    """The issue's two examples: a substring match suggested `my-images` for
    `my-images-splt`, and nothing at all for `my-imags`."""
    where = project / "manifests"
    for typed, meant in (("my-images-splt", "my-images-split, my-images, my-images-shards"),
                         ("my-imags", "my-images, my-images-split, my-images-32x32")):
        for command in ("resolve", "show", "lineage"):
            code, out, err = run(capsys, command, typed)
            assert (code, out) == (2, "")
            assert err == (f"registry: error: no dataset, source or file named {typed!r} in "
                           f"{where} (did you mean: {meant}?)\n")
    assert not (project / "registry").exists()  # nothing was built
    code, _, err = run(capsys, "resolve", "zzz")  # nothing close: no guess
    assert code == 2 and err.endswith("named 'zzz' in " + str(where) + "\n")


def test_a_mistyped_input_in_a_manifest_suggests_the_name(project, capsys):
    manifest = project / "manifests" / "my-images.yaml"
    manifest.write_text(manifest.read_text().replace("inputs: {images: my-images}",
                                                     "inputs: {images: my-imags}", 1))
    code, out, err = run(capsys, "list")
    assert (code, out) == (2, "")
    assert err.startswith("registry: error: manifests/my-images.yaml:")
    assert err.endswith("my-images-split: inputs.images: no dataset, source or file named "
                        "'my-imags' (did you mean: my-images, my-images-split, "
                        "my-images-32x32?)\n")


def test_a_mistyped_command_or_choice_suggests_the_closest(tmp_path):
    out = run_cli("lsit", cwd=tmp_path)
    assert (out.returncode, out.stdout) == (2, "")
    assert "registry: error: argument COMMAND: invalid choice: 'lsit' (did you mean: list?) " \
           "(choose from 'init', 'list'," in out.stderr and "Traceback" not in out.stderr
    sub = run_cli("source", "shwo", cwd=tmp_path)
    assert sub.returncode == 2 and "invalid choice: 'shwo' (did you mean: show?)" in sub.stderr
    plugin = run_cli("snyth", cwd=tmp_path)  # plugin commands are choices too
    assert plugin.returncode == 2 and "(did you mean: synth?)" in plugin.stderr
    assert not any(tmp_path.iterdir())


def test_a_mistyped_example_is_suggested(tmp_path):
    out = run_cli("init", "p", "--example", "imagenett", cwd=tmp_path)
    assert (out.returncode, out.stdout) == (2, "")
    assert out.stderr == ("registry: error: init: unknown example 'imagenett' (known: "
                          "image-folder, imagenet, plugin) (did you mean: imagenet?)\n")
    assert not (tmp_path / "p").exists()


def test_did_you_mean_orders_by_closeness_and_stays_quiet_when_nothing_is_close():
    assert did_you_mean("lsit", ["init", "list", "lock"]) == " (did you mean: list?)"
    assert did_you_mean("abc", ["xyz", "list"]) == ""
    assert did_you_mean("anything", []) == ""


# the project root from a subfolder ----------------------------------------------------


def test_a_command_in_a_subfolder_works_on_the_project_above(project, capsys, monkeypatch):
    nested = project / "data" / "deeper"
    nested.mkdir(parents=True)
    monkeypatch.chdir(nested)
    listed = {row["name"]: row["status"] for row in run_json(capsys, "list")}
    assert listed == {"my-images": "ready", SPLIT: "missing", "my-images-32x32": "missing",
                      "my-images-shards": "missing"}
    code, out, err = run(capsys, "resolve", SPLIT)
    assert (code, err) == (0, "")
    assert Path(out.strip()).parent.parent == project / "registry"  # the project's store
    assert sorted(p.name for p in nested.iterdir()) == []  # nothing written down here
    monkeypatch.chdir(project)
    assert run(capsys, "path", SPLIT)[1] == out  # the same dataset as from the top


def test_the_search_stops_at_the_top_of_a_git_repository(project, capsys, monkeypatch):
    repo = project / "vendored"
    (repo / ".git").mkdir(parents=True)
    (repo / "sub").mkdir()
    monkeypatch.chdir(repo / "sub")
    # another repository's folder is not this project's: the working folder, as before
    code, out, err = run(capsys, "list")
    assert (code, out) == (2, "")
    assert err == f"registry: error: {repo / 'sub' / 'manifests'}: no manifests folder\n"
    assert list((repo / "sub").iterdir()) == []


def test_a_location_in_the_environment_or_root_given_turns_the_search_off(project, capsys,
                                                                          monkeypatch):
    nested = project / "sub"
    nested.mkdir()
    monkeypatch.chdir(nested)
    monkeypatch.setenv("DATASET_REGISTRY_STORE", str(project / "elsewhere"))
    missing = f"registry: error: {nested / 'manifests'}: no manifests folder\n"
    assert run(capsys, "list") == (2, "", missing)  # the working folder, as before
    monkeypatch.delenv("DATASET_REGISTRY_STORE")
    assert run(capsys, "--root", ".", "list") == (2, "", missing)
    assert run(capsys, "list")[0] == 0  # neither: the project above
    assert not (project / "elsewhere").exists() and list(nested.iterdir()) == []


def test_init_in_a_subfolder_of_a_project_makes_a_project_there(project, capsys, monkeypatch):
    nested = project / "other"
    nested.mkdir()
    monkeypatch.chdir(nested)
    code, out, err = run(capsys, "init")
    assert (code, err) == (0, "") and f"wrote a new project in {nested}" in out
    assert (nested / "registry.toml").is_file()


# shell completion ----------------------------------------------------------------------


def complete(script: Path, line: str) -> list[str]:
    """What bash completes for the last word of `line`, with the script sourced."""
    words = line.split(" ")
    program = (f"source {script}; COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; "
               f"COMP_LINE='{line}'; COMP_POINT={len(line)}; _shtab_registry; "
               'printf "%s\\n" "${COMPREPLY[@]}"')
    done = subprocess.run(["bash", "-c", program], capture_output=True, text=True, check=True)
    return done.stdout.split()


def test_bash_completion_is_valid_bash_and_completes_plugin_commands(tmp_path):
    root = plugin_project(tmp_path / "proj")  # a project plugin command: hello
    out = run_cli("completion", "bash", cwd=root)
    assert (out.returncode, out.stderr) == (0, "")
    script = tmp_path / "registry.bash"
    script.write_text(out.stdout)
    checked = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert (checked.returncode, checked.stderr) == (0, "")
    assert complete(script, "registry he") == ["hello"]  # the project's plugin
    assert complete(script, "registry sy") == ["synth"]  # an installed plugin's
    assert complete(script, "registry res") == ["resolve"]
    assert "--json" in complete(script, "registry gc --")
    assert complete(script, "registry source s") == ["set", "show"]


def test_zsh_completion_is_produced(tmp_path):
    out = run_cli("completion", "zsh", cwd=plugin_project(tmp_path / "proj"))
    assert (out.returncode, out.stderr) == (0, "")
    assert out.stdout.startswith("#compdef registry") and "hello" in out.stdout
    if shutil.which("zsh"):  # not installed everywhere; bash's check above always runs
        checked = subprocess.run(["zsh", "-n"], input=out.stdout, text=True,
                                 capture_output=True)
        assert checked.returncode == 0, checked.stderr


def test_completion_for_another_shell_is_refused(tmp_path):
    out = run_cli("completion", "fish", cwd=tmp_path)
    assert (out.returncode, out.stdout) == (2, "")
    assert "invalid choice: 'fish' (choose from 'bash', 'zsh')" in out.stderr
    assert list(tmp_path.iterdir()) == []



@pytest.mark.parametrize("argv", [["resolve", "x", "--jobs", "0"], ["audit", "x", "-j", "-5"],
                                  ["audit", "x", "--threshold", "abc"], ["reslove", "x"]])
def test_a_usage_error_is_one_line_pointing_at_help(argv, tmp_path):
    proc = run_cli(*argv, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1 and proc.stderr.rstrip().endswith("--help)")


def test_verify_of_a_whole_store_names_the_store(tmp_path):
    proc = run_cli("verify", cwd=tmp_path)
    assert proc.returncode == 0
    assert proc.stdout == (f"verified 0 artifact(s) in {tmp_path / 'registry'}: all files "
                           "match their records\n")
