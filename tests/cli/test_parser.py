"""The parser `registry` builds for a line naming a core command gives only that command
its arguments (cli/parser.py, `build_parser(only=...)`): it must parse, help and fail
exactly as the full parser does."""

from __future__ import annotations

import contextlib
import io

import pytest

from dataset_registry import cli
from dataset_registry.cli.parser import CORE, NotBuilt, build_parser, command_word

LINES = [
    ["show", "my-images-split"],
    ["show", "x", "--json", "--root", "/p"],
    ["--root", "/p", "--store", "s3://b/x", "lineage", "x"],
    ["list", "--tags", "a,b", "--debug"],
    ["resolve", "a", "b", "-j", "3", "--dry-run", "--cache", "u1", "--cache", "u2"],
    ["source", "set", "src", "/data/x.tar", "--update-lock", "--manifests", "m"],
    ["job", "render", "j", "--flavor", "f", "-o", "out.yaml", "--check"],
    ["gc", "--keep-days", "2.5", "--yes"],
    ["sql", "SELECT 1", "--format", "csv", "--timeout", "0"],
]


def outcome(parser_of, argv: list[str]) -> tuple[object, str, str]:
    """(the Namespace or the exit code, stdout, stderr) of parsing `argv`."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            result: object = vars(parser_of(argv).parse_args(argv))
        except SystemExit as exc:
            result = exc.code
    return result, out.getvalue(), err.getvalue()


def named_only(argv: list[str]):
    return build_parser(only=command_word(argv)[0])


@pytest.mark.parametrize("argv", [*LINES, ["show"], ["show", "x", "--bogus"],
                                  ["gc", "--keep-days", "soon"], ["sql", "q", "--format", "x"],
                                  ["show", "--help"], ["-h", "show"],
                                  ["source", "--help"], ["source", "sett", "a", "b"]])
def test_a_line_parses_helps_and_fails_as_with_the_full_parser(argv):
    assert command_word(argv)[0] in CORE
    assert outcome(named_only, argv) == outcome(lambda _: build_parser(), argv)


def test_only_the_named_command_gets_its_arguments():
    parser = build_parser(only="show")
    sub = next(a for a in parser._actions if a.dest == "command")
    assert list(sub.choices) == list(CORE)  # every command by name, for usage and help
    assert [a.dest for a in sub.choices["show"]._actions if a.dest != "help"][:2] == \
        ["name", "json"]
    assert [a.dest for a in sub.choices["resolve"]._actions] == ["help"]
    with pytest.raises(NotBuilt):
        parser.parse_args(["resolve", "x"])


def test_a_word_argparse_reads_otherwise_falls_back_to_the_full_parser(capsys):
    """`--ro` is --root to argparse (abbreviated), not to command_word, which then takes
    its value for the command: the line is parsed again by the full parser."""
    argv = ["--ro", "list", "show", "--help"]
    assert command_word(argv)[0] == "list"
    with pytest.raises(NotBuilt):
        named_only(argv).parse_args(argv)
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith("usage: registry show ")
