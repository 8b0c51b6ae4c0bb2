"""Commands plugins add to `registry` (the `commands` kind): listed by --help, run with the
CLI's error handling, loaded only when the line does not name a core command, and a
name taken by a core command refused."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dataset_registry.cli.parser import CORE, build_parser

from .conftest import run_cli

HELLO = '''
from dataset_registry import BadInputError
from dataset_registry.plugins import register


class Hello:
    help = "greet someone, from a project plugin"

    def add_arguments(self, parser):
        parser.add_argument("who")

    def run(self, args):
        if args.who == "nobody":
            raise BadInputError("hello: there is nobody to greet")
        print(f"hello {args.who} (root {args.root})")
        return 0


register("commands", "hello", Hello, origin="hello_cmd")
'''


def project(root: Path, extra: str = "") -> Path:
    root.mkdir(exist_ok=True)
    (root / "manifests").mkdir(exist_ok=True)
    (root / "registry.toml").write_text('plugins = ["hello_cmd"]\n')
    (root / "hello_cmd.py").write_text(HELLO + textwrap.dedent(extra))
    return root


def test_core_names_are_the_parsers_core_commands():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert tuple(sub.choices) == CORE


def test_help_lists_the_core_and_the_imagenet_commands(tmp_path):
    out = run_cli("--help", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    for line in ("resolve             build what is missing",
                 "synth               write a synthetic ImageNet-shaped source",
                 "eval                top-1..5 classification error of val predictions",
                 "demo                synthesize ImageNet, resolve calibration sets, query"):
        assert line in out.stdout
    assert out.stderr == ""


def test_the_imagenet_commands_come_from_the_packages_entry_points():
    from dataset_registry import plugins

    for name in ("synth", "eval", "demo"):
        assert plugins.PLUGINS.origin("commands", name) == (
            f"entry point dataset_registry.commands:{name} of dataset-registry 0.1.0")


def test_a_core_command_loads_no_plugin_command(tmp_path):
    code = ("import sys; from dataset_registry.cli import main; "
            "rc = main(['init', 'p']) + main(['--root', 'p', 'list']) + "
            "main(['init', '--example', 'imagenet', 'q']); "
            "print(rc, sorted(m for m in sys.modules if m.startswith('dataset_registry.domains')"
            "))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, check=True)
    # the imagenet example is the plugin's (its package data); none of its commands load
    assert out.stdout.splitlines()[-1] == ("0 ['dataset_registry.domains', "
                                           "'dataset_registry.domains.imagenet', "
                                           "'dataset_registry.domains.imagenet.example']")


def test_a_project_plugin_command_shows_in_help_and_runs(tmp_path):
    root = project(tmp_path / "proj")
    helped = run_cli("--help", cwd=root)
    assert helped.returncode == 0
    assert "hello               greet someone, from a project plugin" in helped.stdout
    ran = run_cli("hello", "world", cwd=root)
    assert (ran.returncode, ran.stdout, ran.stderr) == (0, "hello world (root .)\n", "")
    for args in (["--root", str(root), "hello", "you"], ["hello", "you", "--root", str(root)]):
        elsewhere = run_cli(*args, cwd=tmp_path)  # the project named by --root, either side
        assert elsewhere.returncode == 0, elsewhere.stderr
        assert elsewhere.stdout == f"hello you (root {root})\n"


def test_a_plugin_commands_error_is_one_line_and_its_exit_code(tmp_path):
    out = run_cli("hello", "nobody", cwd=project(tmp_path))
    assert out.returncode == 2
    assert out.stderr == "registry: error: hello: there is nobody to greet\n"


def test_an_unknown_command_lists_the_plugin_commands_too(tmp_path):
    out = run_cli("helo", "x", cwd=project(tmp_path))
    assert out.returncode == 2
    assert "invalid choice: 'helo'" in out.stderr and "'hello'" in out.stderr
    assert "'synth'" in out.stderr and "Traceback" not in out.stderr


def test_a_command_taking_a_core_name_is_a_plugin_error_exit_2(tmp_path):
    root = project(tmp_path, 'register("commands", "list", Hello, origin="hello_cmd")\n')
    clash = ("command 'list' from hello_cmd clashes with the core command `registry list`; "
             "rename it")
    helped = run_cli("--help", cwd=root)  # the core's help and the good plugin command show
    assert helped.returncode == 0 and "resolve " in helped.stdout
    assert "hello " in helped.stdout and "synth " in helped.stdout
    assert helped.stderr == f"registry: warning: plugin command left out: {clash}\n"
    core = run_cli("list", cwd=root)  # the core command runs, the plugin's never does
    assert core.returncode == 0 and core.stderr == "", core.stderr


@pytest.mark.parametrize("broken, message", [
    ('register("commands", "broken", "no_such_module:Cmd", origin="hello_cmd")\n',
     "'no_such_module:Cmd' (from hello_cmd) does not import: No module named "
     "'no_such_module'"),
    ("class Store:\n    help = 'takes --store again'\n"
     "    def add_arguments(self, p): p.add_argument('--store')\n"
     "    def run(self, a): return 0\n"
     'register("commands", "broken", Store, origin="hello_cmd")\n',
     "command 'broken' from hello_cmd: add_arguments failed: argument --store: conflicting "
     "option string: --store"),
    ("class Height:\n    help = 'takes -h'\n"
     "    def add_arguments(self, p): p.add_argument('-h', '--height')\n"
     "    def run(self, a): return 0\n"
     'register("commands", "broken", Height, origin="hello_cmd")\n',
     "command 'broken' from hello_cmd: add_arguments failed: argument -h/--height: "
     "conflicting option string: -h"),
    ('register("commands", "broken", "badmod:X", origin="hello_cmd")\n',  # badmod.py: below
     "'badmod:X' (from hello_cmd) does not import: NameError: name 'undefined_name' is not "
     "defined"),
])
def test_a_broken_plugin_command_leaves_the_others_working(tmp_path, broken, message):
    """One plugin's broken command is an error when it is named and a one-line warning
    otherwise: ImageNet's commands and the project's other commands still run."""
    root = project(tmp_path, broken)
    (root / "badmod.py").write_text("x = undefined_name\n")  # a module failing as it imports
    named = run_cli("broken", cwd=root)
    # an import that failed has a traceback behind it (--debug shows it)
    hint = " (run with --debug for the traceback)" if "does not import" in message else ""
    assert (named.returncode, named.stderr) == (2, f"registry: error: {message}{hint}\n")
    other = run_cli("hello", "world", cwd=root)
    assert other.returncode == 0 and other.stdout == "hello world (root .)\n"
    assert other.stderr == f"registry: warning: plugin command left out: {message}\n"
    helped = run_cli("--help", cwd=root)
    assert helped.returncode == 0 and "Traceback" not in helped.stderr
    assert "synth " in helped.stdout and "hello " in helped.stdout
    assert "broken " not in helped.stdout


def test_a_plugin_command_with_subcommands_takes_the_where_options_after_them(tmp_path):
    root = project(tmp_path, """
        class Nest:
            help = "a command with subcommands"

            def add_arguments(self, parser):
                leaf = parser.add_subparsers(dest="what", required=True).add_parser("a")
                leaf.add_argument("n")

            def run(self, args):
                print(f"ran {args.what} {args.n} {args.root}")
                return 0

        register("commands", "nest", Nest, origin="hello_cmd")
    """)
    for args in (["nest", "a", "1", "--root", "."], ["--root", ".", "nest", "a", "1"]):
        out = run_cli(*args, cwd=root)
        assert (out.returncode, out.stdout, out.stderr) == (0, "ran a 1 .\n", ""), args


@pytest.mark.parametrize("body, missing", [
    ("class Bad:\n    help = 'x'\n", "add_arguments, run"),
    ("class Bad:\n    def add_arguments(self, p): pass\n    def run(self, a): return 0\n",
     "help (a one-line string)"),
])
def test_a_target_that_is_not_a_command_is_refused(tmp_path, body, missing):
    root = project(tmp_path, body + 'register("commands", "bad", Bad, origin="hello_cmd")\n')
    out = run_cli("bad", cwd=root)
    assert out.returncode == 2
    assert out.stderr == (f"registry: error: command 'bad' from hello_cmd is not a command: it "
                          f"has no {missing}\n")


def test_an_installed_distributions_command_entry_point(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "outside_cmds.py").write_text(textwrap.dedent("""
        from dataset_registry.cli import Command

        class Count(Command):
            help = "count to N"

            def add_arguments(self, parser):
                parser.add_argument("n", type=int)

            def run(self, args):
                print(" ".join(str(i) for i in range(1, args.n + 1)))
                return 3 if args.n == 0 else 0
    """))
    dist = site / "outside_cmds-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: outside-cmds\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[dataset_registry.commands]\n"
                                           "count = outside_cmds:Count\n")
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(site),
                                                       os.environ.get("PYTHONPATH")]))}
    helped = run_cli("--help", cwd=tmp_path, env=env)
    assert "count               count to N" in helped.stdout and "synth " in helped.stdout
    out = run_cli("count", "3", cwd=tmp_path, env=env)
    assert (out.returncode, out.stdout) == (0, "1 2 3\n")
    assert run_cli("count", "0", cwd=tmp_path, env=env).returncode == 3  # run()'s exit code


def test_a_line_the_first_look_cannot_read_gets_the_full_parsers_message(tmp_path):
    out = run_cli("--root", cwd=project(tmp_path))  # --root needs its value
    assert out.returncode == 2 and "Traceback" not in out.stderr
    # the full parser's message, not the peek's: one line, pointing at --help
    assert out.stderr == ("registry: error: argument --root: expected one argument "
                          "(see: registry --help)\n")


def test_a_plugin_commands_bug_is_one_line_naming_it_and_debug_shows_the_traceback(tmp_path):
    root = project(tmp_path, """
        class Bug(Hello):
            help = "has a bug"

            def run(self, args):
                return {}["missing"]

        register("commands", "bug", Bug, origin="hello_cmd")
    """)
    out = run_cli("bug", "x", cwd=root)
    assert (out.returncode, out.stdout) == (1, "")
    assert out.stderr == ("registry: error: command 'bug' (from hello_cmd) failed: KeyError: "
                          "'missing' (run with --debug for the traceback)\n")
    debug = run_cli("--debug", "bug", "x", cwd=root)
    *trace, last = debug.stderr.splitlines()
    assert debug.returncode == 1 and trace[0] == "Traceback (most recent call last):"
    assert f'  File "{root / "hello_cmd.py"}", line 25, in run' in trace
    assert last == "registry: error: command 'bug' (from hello_cmd) failed: KeyError: 'missing'"
