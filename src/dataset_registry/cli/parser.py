"""The `registry` argument parser: the core commands, then those plugins add."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from typing import Any, NoReturn

from .. import __version__

DESCRIPTION = "The `registry` command. Exit codes: 0 ok, 1 failure, 2 bad input."

# The core's own commands: a plugin command may not take one of these names, and a
# command line naming one of them never needs the plugins' commands loaded.
CORE = ("init", "list", "show", "resolve", "path", "lineage", "report", "verify", "sql",
        "source", "job", "push", "pull", "gc", "pin", "unpin", "lock", "catalog", "diff", "audit",
        "completion")

UPDATE_LOCK = ("locks the fingerprint of a set source that differs from registry.lock's "
               "(else an error): every dataset made from it gets a new key")

# root None: not given, so found from the working folder (`project_root`)
WHERE_DEFAULTS: dict[str, Any] = {"root": None, "manifests": None, "store": None,
                                  "catalog": None, "storage_option": None, "cache": None}

PROJECT_FILE = "registry.toml"  # what `registry init` writes: a project's top folder
LOCATION_ENV = ("DATASET_REGISTRY_MANIFESTS", "DATASET_REGISTRY_STORE",
                "DATASET_REGISTRY_CATALOG", "DATASET_REGISTRY_STATE")


class Parser(argparse.ArgumentParser):
    """argparse's parser, whose "invalid choice" (a mistyped command, say) also names the
    choices closest to what was typed, and whose usage errors are one line (exit 2), as
    every other error here: where to look is `--help`."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see: {self.prog} --help)\n")

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        if action.choices is not None and value not in action.choices:
            from ..errors import did_you_mean

            known = [str(c) for c in action.choices]
            raise argparse.ArgumentError(
                action, f"invalid choice: {value!r}{did_you_mean(str(value), known)} "
                f"(choose from {', '.join(map(repr, known))})")


def workers(text: str) -> int:
    """A --jobs value: a whole number of processes, 1 or more."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of processes (1 or more)")
    return value


def build_parser(commands: Mapping[str, Any] | None = None, *,
                 only: str | None = None) -> argparse.ArgumentParser:
    """The full parser; `commands` are plugin commands by name (see cli.command). `only`:
    the core command the line names (`command_word`), the one given its arguments: every
    other is there by name and help (the usage, `--help`), without them. Adding the ~300
    arguments of all is most of the parser's ~6 ms, of which a line parses one command's;
    should argparse take another command from the line (an abbreviated option swallowing
    the word, say), parsing raises NotBuilt: build the full parser and parse again."""
    p = Parser(prog="registry", description=DESCRIPTION)
    p.add_argument("--version", action="version", version=f"registry {__version__}",
                   help="print `registry VERSION` and exit")
    where_options(p, WHERE_DEFAULTS)
    debug_option(p, False)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND",
                           action=_Commands)
    sub.only = only
    _core_commands(sub if only is None else _OnlyOne(sub, only))
    for command in _all_subparsers(sub, only):  # the same options after the command, too
        where_options(command, None)
        debug_option(command, None)  # not on plugin commands: theirs may have --debug
    for name, command in (commands or {}).items():
        c = sub.add_parser(name, help=command.help,
                           description=getattr(command, "description", None) or command.help)
        add_command_arguments(c, command)  # as cli.command checked: a clash was refused there
    return p


def add_command_arguments(parser: argparse.ArgumentParser, command: Any) -> None:
    """A plugin command's arguments on its parser: the --root/--store/... options first
    (so adding one again is a clash its author sees), then its own, then the same options
    on the leaves of any subcommands it made (as every core command has them)."""
    where_options(parser, None)
    command.add_arguments(parser)
    nested = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for leaf in (_all_subparsers(nested[0]) if nested else []):
        where_options(leaf, None)


def _core_commands(sub: Any) -> None:
    c = sub.add_parser("init", help="start a project: registry.toml, manifests/, .gitignore")
    c.add_argument("dir", nargs="?", help="the project folder (default: --root, else .)")
    c.add_argument("--example", default="image-folder",
                   help="image-folder (default): a commented manifest for your own images "
                   "as class folders; plugin: a project with its own plugin (a layout and a "
                   "recipe, as code); plugins add others (imagenet: the shipped ImageNet "
                   "manifests)")
    c = sub.add_parser("list", help="variants with their status")
    c.add_argument("--tags", help="comma-separated tags, all must match")
    json_option(c)
    c = sub.add_parser("show", help="spec, key, inputs, status and location")
    c.add_argument("name", help="a dataset, source or file of the manifests")
    json_option(c)
    c = sub.add_parser("resolve", help="build what is missing; print the locations")
    c.add_argument("names", nargs="*", metavar="NAME",
                   help="datasets to resolve (one: its location alone; several: a line "
                   "each, NAME STATUS LOCATION)")
    c.add_argument("--tags", help="resolve every dataset with all these tags (CK style)")
    c.add_argument("--jobs", "-j", type=workers, help="worker processes (default: all cores)")
    c.add_argument("--executor", help="where tasks run: local (default, a process pool), "
                   "dask://HOST:PORT (a Dask scheduler), dask://local (a Dask LocalCluster)")
    c.add_argument("--dry-run", action="store_true", help="show what would be built")
    c.add_argument("--repair", action="store_true", help="re-verify the datasets and their "
                   "inputs; rebuild in place those damaged")
    c.add_argument("--update-lock", action="store_true", help=UPDATE_LOCK)
    json_option(c)
    c = sub.add_parser("path", help="print the location of a built dataset")
    c.add_argument("name", help="a built dataset")
    json_option(c)
    c = sub.add_parser("lineage", help="the tree of inputs down to the sources")
    c.add_argument("name", help="a dataset, source or file of the manifests")
    json_option(c)
    c = sub.add_parser("report", help="the dataset card: one self-contained HTML page (card, "
                       "lineage, classes, samples, audit, files, skipped images, runs)")
    c.add_argument("name", help="a built dataset")
    c.add_argument("--output", "-o", metavar="PATH",
                   help="where to write it (default: NAME.card.html; -: standard output)")
    c.add_argument("--near", action="store_true",
                   help="its audit compares near copies across splits too, as registry audit "
                   "does (each image decoded once, then cached); default: exact copies only")
    c = sub.add_parser("verify", help="re-hash artifacts against their records")
    c.add_argument("names", nargs="*", metavar="NAME",
                   help="datasets to verify (default: every artifact in the store)")
    json_option(c)
    c = sub.add_parser("sql", help="read-only SQL over the catalog")
    c.add_argument("query", help="one SELECT statement")
    c.add_argument("--format", choices=["table", "csv", "json"], default="table",
                   help="table (default; tab-separated off a terminal), csv or json")
    c.add_argument("--timeout", type=float, default=60.0, metavar="S",
                   help="stop the query after S seconds (default 60; 0: no limit)")
    json_option(c)
    c = sub.add_parser("source", help="point sources at your data, show and check them")
    ssub = c.add_subparsers(dest="action", required=True, metavar="ACTION")
    s = ssub.add_parser("set", help="set a source's location")
    s.add_argument("name", help="a source of the manifests")
    s.add_argument("location", help="its copy here: a tar, zip or folder, or an s3:// URL")
    s.add_argument("--update-lock", action="store_true", help=UPDATE_LOCK)
    json_option(s)
    s = ssub.add_parser("show", help="sources, locations and fingerprints")
    s.add_argument("name", nargs="?", help="one source (default: every source)")
    json_option(s)
    s = ssub.add_parser("check", help="count files; --md5 verifies the published checksum")
    s.add_argument("name", help="a source of the manifests")
    s.add_argument("--md5", action="store_true",
                   help="also the archive's md5, checked against the manifest's expect.md5")
    s.add_argument("--force", action="store_true", help="re-read even if unchanged")
    json_option(s)
    c = sub.add_parser("job", help="GPU job specs of training manifests: list, render, submit")
    jsub = c.add_subparsers(dest="action", required=True, metavar="ACTION")
    s = jsub.add_parser("list", help="training jobs, their datasets and flavors")
    json_option(s)
    for action, text in (("render", "print the job spec (YAML) with dataset locations and keys"),
                         ("submit", "render, then pipe to `kubectl apply -f -`")):
        s = jsub.add_parser(action, help=text)
        s.add_argument("name", help="a training job of the manifests")
        s.add_argument("--flavor", help="which template (default: the job's first)")
        s.add_argument("--cluster-store",
                       help="the store as the cluster sees it (default: the job's volume.store)")
        if action == "render":
            s.add_argument("--output", "-o", help="write to this file instead of stdout")
            s.add_argument("--check", action="store_true",
                           help="validate against the Kubernetes/Kubeflow models ([k8s] extra)")
    c = sub.add_parser("push", help="upload built datasets to another store (a cache), "
                       "marker last, skipping what is there")
    c.add_argument("names", nargs="+", metavar="NAME", help="built datasets to upload")
    c.add_argument("--to", required=True, metavar="URL", help="the store to upload to")
    json_option(c)
    c = sub.add_parser("pull", help="copy built datasets from a cache into the store; "
                       "never builds")
    c.add_argument("names", nargs="+", metavar="NAME", help="datasets to copy here")
    c.add_argument("--from", dest="source", metavar="URL",
                   help="the store to pull from (default: the caches, in order)")
    json_option(c)
    c = sub.add_parser("gc", help="remove crashed builds and the artifacts no root keeps "
                       "(manifests, registry.lock, pins, recent job runs, pushed locks)")
    c.add_argument("--dry-run", action="store_true",
                   help="list what would be deleted and what is kept, and why")
    c.add_argument("--yes", "-y", action="store_true",
                   help="delete without asking (needed when not on a terminal)")
    c.add_argument("--keep-days", type=float, default=30.0, metavar="N",
                   help="keep what job runs of the last N days read (default 30)")
    json_option(c)
    c = sub.add_parser("pin", help="keep built datasets through gc, whatever the manifests "
                       "say later")
    c.add_argument("names", nargs="+", metavar="NAME", help="built datasets to keep")
    json_option(c)
    c = sub.add_parser("unpin", help="remove the pins of datasets (every key pinned for "
                       "each) or of pinned keys")
    c.add_argument("names", nargs="+", metavar="NAME_OR_KEY",
                   help="a dataset (every key pinned for it) or a pinned key")
    json_option(c)
    c = sub.add_parser("lock", help="write registry.lock: the keys of every source set here "
                       "and every dataset (commit it; clones without the data resolve by it)")
    c.add_argument("--update-lock", action="store_true", help=UPDATE_LOCK)
    json_option(c)
    c = sub.add_parser("catalog", help="catalog maintenance")
    c.add_argument("action", choices=["rebuild"],
                   help="rebuild: re-index the store into a new catalog, renamed over the old "
                   "(a corrupt one is moved aside)")
    json_option(c)
    c = sub.add_parser("diff", help="what differs between two builds: members added, "
                       "removed, changed; class counts; params and inputs")
    c.add_argument("a", metavar="A", help="a dataset name (its current build) or an artifact key")
    c.add_argument("b", metavar="B", help="a dataset name or an artifact key, compared with A")
    json_option(c)
    c.add_argument("--limit", type=int, default=20, metavar="N",
                   help="names listed per split and category (default 20; counts are "
                   "always complete)")
    c.add_argument("--exit-code", action="store_true",
                   help="exit 1 if A and B differ, 0 if not (as git diff --exit-code)")
    c = sub.add_parser("audit", help="leaks between splits: exact and near copies of images "
                       "across splits, copies within one, class balance, undecodable images; "
                       "exit 1 when an image is in two splits")
    c.add_argument("name", help="a source, or a built dataset")
    json_option(c)
    c.add_argument("--no-near", dest="near", action="store_false",
                   help="read the indexes only: exact copies and class balance, no image "
                   "decoded (no near copies, no undecodable images)")
    c.add_argument("--threshold", type=int, default=None, metavar="BITS",
                   help="near copies: pHashes at most BITS of 64 apart (default 10)")
    c.add_argument("--jobs", "-j", type=workers, help="processes decoding images (default: all "
                   "cores); each distinct image is decoded once, then cached")
    c = sub.add_parser("completion", help="print a shell completion script (plugin commands "
                       "included): eval \"$(registry completion bash)\"")
    c.add_argument("shell", choices=["bash", "zsh"], help="the shell to complete for")


def json_option(parser: argparse.ArgumentParser) -> None:
    """--json: the command prints one JSON document on stdout instead of text (its shape
    is in the README's CLI section). Every command that prints takes it, plugin and
    report commands too: `json_option(parser)`, then `if args.json:` in the handler."""
    parser.add_argument("--json", action="store_true",
                        help="print one JSON document on stdout instead of text")


def where_options(p: argparse.ArgumentParser, defaults: dict[str, Any] | None) -> None:
    """Where the registry is: on the top-level parser with defaults, and again on each
    command with none (SUPPRESS), so a value given after the command is not reset."""
    def default(name: str) -> Any:
        return argparse.SUPPRESS if defaults is None else defaults[name]

    p.add_argument("--root", default=default("root"),
                   help="the project folder (default: the nearest folder holding "
                   f"{PROJECT_FILE}, from here up to the top of a git repository; else .)")
    p.add_argument("--manifests", default=default("manifests"),
                   help="manifests folder (default: ROOT/manifests)")
    p.add_argument("--store", default=default("store"),
                   help="store: a folder (default: ROOT/registry) or s3://bucket/prefix")
    p.add_argument("--catalog", default=default("catalog"),
                   help="catalog file (default: ROOT/catalog.duckdb)")
    p.add_argument("--cache", action="append", metavar="URL", default=default("cache"),
                   help="a read-only store to pull built datasets from before building "
                   "(repeatable, consulted in order; default: DATASET_REGISTRY_CACHES, "
                   "else caches in registry.toml)")
    p.add_argument("--storage-option", action="append", metavar="NAME=VALUE",
                   default=default("storage_option"),
                   help="an fsspec/s3fs option for s3:// stores and sources, e.g. "
                   "endpoint_url=http://127.0.0.1:9000 (repeatable; credentials are best left "
                   "to the AWS environment)")


def debug_option(p: argparse.ArgumentParser, default: bool | None) -> None:
    """--debug: on a failure, the traceback behind the one-line error (main reads it from
    the command line before parsing, so that plugins failing to import are covered)."""
    p.add_argument("--debug", action="store_true",
                   default=argparse.SUPPRESS if default is None else default,
                   help="on a failure, print the traceback behind the error (also: "
                   "DATASET_REGISTRY_DEBUG=1)")


def _all_subparsers(sub: Any, only: str | None = None) -> list[argparse.ArgumentParser]:
    """The leaf parsers under `sub` (of command `only` alone, if given)."""
    found = []
    for name, parser in sub.choices.items():
        if only is not None and name != only:
            continue
        nested = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        found += _all_subparsers(nested[0]) if nested else [parser]
    return found


class NotBuilt(Exception):
    """The line names a command that `build_parser(only=...)` left without its arguments."""


class _Commands(argparse._SubParsersAction):  # type: ignore[type-arg]
    """The COMMAND argument: refuses to parse a command built without its arguments."""

    only: str | None = None

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        if self.only is not None and values and values[0] != self.only:
            raise NotBuilt(values[0])
        super().__call__(parser, namespace, values, option_string)


class _OnlyOne:
    """`_core_commands`' subparsers when one command is built: every command is added (by
    name and help), its arguments only for `only`'s."""

    def __init__(self, sub: Any, only: str) -> None:
        self.sub, self.only = sub, only

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        parser = self.sub.add_parser(name, **kwargs)
        return parser if name == self.only else _Unbuilt()


class _Unbuilt:
    """What `_core_commands` adds to a command not built: taken, and dropped."""

    def add_argument(self, *args: Any, **kwargs: Any) -> None:
        pass

    def add_subparsers(self, *args: Any, **kwargs: Any) -> _Unbuilt:
        return self

    def add_parser(self, *args: Any, **kwargs: Any) -> _Unbuilt:
        return self


def command_word(argv: list[str]) -> tuple[str | None, str]:
    """(the command named on the line or None, the project: --root given anywhere, else
    `project_root()`), read before the full parser exists: which plugins to load depends
    on them."""
    p = _Quiet(prog="registry", add_help=False, allow_abbrev=False)
    where_options(p, WHERE_DEFAULTS)
    try:
        known, rest = p.parse_known_args(argv)
    except _Unparsed:  # e.g. --root without a value: the full parser says so, with its usage
        return None, "."
    # Before the command only the options above (known) or -h can come: the first word
    # left is the command.
    word = next((a for a in rest if not a.startswith("-")), None)
    return word, project_root(known.root, word)


def project_root(given: str | None, command: str | None) -> str:
    """The project a command works on: --root if given; else, as git finds its repository,
    the nearest folder from the working folder up holding registry.toml (what `registry
    init` writes; a `manifests/` folder is too common a name to mark a project: Kubernetes
    repositories have them), stopping at the top of a git repository or of the file
    system; none found, the working folder ("."). Not searched for `init` (it makes a
    project where it runs) or when a DATASET_REGISTRY_* location is set (that setup
    names its folders itself, relative to the working folder, as before)."""
    if given is not None:
        return given
    if command == "init" or any(os.environ.get(name) for name in LOCATION_ENV):
        return "."
    here = os.getcwd()
    folder = here
    while True:
        if os.path.isfile(os.path.join(folder, PROJECT_FILE)):
            return "." if folder == here else folder
        parent = os.path.dirname(folder)
        if parent == folder or os.path.exists(os.path.join(folder, ".git")):
            return "."
        folder = parent


class _Unparsed(Exception):
    pass


class _Quiet(argparse.ArgumentParser):
    """A parser that raises instead of printing and exiting: `command_word` only peeks."""

    def error(self, message: str) -> NoReturn:
        raise _Unparsed(message)
