"""The `registry` command. Exit codes: 0 ok, 1 failure, 2 bad input.

argparse rather than a framework: `registry resolve` of a built variant must
start, answer and exit in well under 0.3 s, so heavy imports stay lazy, and the
commands plugins add (`cli.command`) are loaded only when the command line does
not name a core one.

parser: the arguments; handlers: the core commands; sql: `registry sql`, which opens
the catalog alone (no Registry); views: `show`, `lineage`, `list`, whose answers `answers`
remembers and replays while they are current (no Registry either); command: plugin
commands; display: tables and progress bars.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import RegistryError
from .command import Command, load_commands
from .parser import CORE, NotBuilt, build_parser, command_word, project_root

__all__ = ["Command", "main", "open_registry"]


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: unwound like Ctrl-C (staging removed, workers stopped)."""


_TERMINATED: list[int] = []  # SIGTERM came (DuckDB may hand it back as RuntimeError)


def _terminate(signum: int, frame: Any) -> None:
    _TERMINATED.append(signum)
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    """Run `registry ARGV`; the exit code. `argv` None: this process's command line (the
    `registry` script, `python -m dataset_registry.cli`), which ends as main returns."""
    exiting = argv is None
    argv = sys.argv[1:] if argv is None else list(argv)
    import gc
    import os
    import signal

    # What a command makes as it starts (modules, classes, the parser, the manifests) lives
    # as long as the process, so the cycle collector's passes over it free nothing: ~80 of
    # them, ~10 ms of the ~0.18 s of CPU a first `show` takes. It is off until the command runs
    # (`_dispatch`), and to the end for the read-only views (VIEWS), which are such a start
    # and little more (reference counting still frees what they drop).
    collecting = gc.isenabled()
    gc.disable()
    from ..core.failures import DEBUG_ENV

    _TERMINATED.clear()
    previous = signal.signal(signal.SIGTERM, _terminate)
    # --debug is seen before parsing: a plugin failing as it imports is reported then.
    # Through the environment, so the library and the workers see it too.
    debug_before = os.environ.get(DEBUG_ENV)
    if "--debug" in argv[:argv.index("--") if "--" in argv else len(argv)]:
        os.environ[DEBUG_ENV] = "1"
    try:
        word, root = command_word(argv)
        commands = _plugin_commands(word, root)
        args = _parse(argv, word, commands)
        args.root = project_root(args.root, args.command)
        code = 0 if _fast_path(args) else _dispatch(args, commands, collecting) or 0
        if exiting and args.command in LEFT_TO_THE_EXIT:
            # The process ends now: its exit would collect every object it made (~4% of a
            # first `show`, ~40 ms after a build on 2 cores) to free them a moment before
            # the OS does. These commands leave nothing that needs it (no open file; in
            # cycles, one finalizer: a lock file's, its lock already released), so their
            # objects are frozen: the exit's passes skip them. Not for an in-process caller
            # (argv given), nor after a failure.
            gc.freeze()
        return code
    except RegistryError as exc:
        _report(exc, exc.details)
        return exc.exit_code
    except Terminated:
        print("registry: terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("registry: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:
        # Last resort: the stores and Output already name what failed (StorageError); a
        # stray one still gets one line, not a traceback.
        print(f"registry: error: {_os_error(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug, ours or a plugin's (a layout's, say): still one line
        if _signal_in_a_query(exc):
            print(f"registry: {'terminated' if _TERMINATED else 'interrupted'}",
                  file=sys.stderr)
            return 143 if _TERMINATED else 130
        from ..core.failures import summary, traceback_text

        _report(f"unexpected {summary(exc)}", traceback_text(exc))
        return 1
    finally:
        if collecting:
            gc.enable()
        signal.signal(signal.SIGTERM, previous)
        if debug_before is None:
            os.environ.pop(DEBUG_ENV, None)
        else:
            os.environ[DEBUG_ENV] = debug_before


def _signal_in_a_query(exc: BaseException) -> bool:
    """Whether `exc` is Ctrl-C (or SIGTERM) as DuckDB hands it back: one that comes while
    this thread runs a query of its own (a build reading its inputs' tables, say) stops the
    query and is raised as this RuntimeError, the KeyboardInterrupt (Terminated) gone."""
    return type(exc) is RuntimeError and str(exc) == "Query interrupted"


def _parse(argv: list[str], word: str | None, commands: dict[str, Any]) -> argparse.Namespace:
    """The line parsed by a parser given the arguments of the core command it names
    (`word`) alone (see build_parser), or of every command (plugin ones, none named)."""
    if word in CORE and word != "completion" and not commands:
        try:
            return build_parser(only=word).parse_args(argv)
        except NotBuilt:
            pass
    return build_parser(commands).parse_args(argv)


def _report(message: object, details: str) -> None:
    """The error's one line; with --debug (DATASET_REGISTRY_DEBUG=1), the traceback behind
    it first, else a hint that there is one."""
    from ..core.failures import DEBUG_HINT, debugging

    if details and debugging():
        print(details.rstrip("\n"), file=sys.stderr)
    hint = f" {DEBUG_HINT}" if details and not debugging() else ""
    print(f"registry: error: {message}{hint}", file=sys.stderr)


def _plugin_commands(word: str | None, root: str) -> dict[str, Any]:
    """The plugins' commands, unless the line names a core command (then none are needed,
    and `registry resolve` does not pay for reading every distribution's entry points).
    `completion` is the core command that needs them: its script completes them too."""
    if word in CORE and word != "completion":
        return {}
    try:
        found, broken = load_commands(root)
    except RegistryError as exc:
        if word is not None:
            raise  # e.g. a broken registry.toml: no plugin command can be trusted to run
        # `registry --help` still lists the core commands, and says what is wrong
        print(f"registry: warning: plugin commands not loaded: {exc}", file=sys.stderr)
        return {}
    if word in broken:
        raise broken[word]  # the command named is the broken one: say why it cannot run
    for exc in broken.values():  # the others still run; each broken one said once
        print(f"registry: warning: plugin command left out: {exc}", file=sys.stderr)
    return found


def _os_error(exc: OSError) -> str:
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{exc.strerror or exc}"


def _fast_path(args: argparse.Namespace) -> bool:
    """Answer `resolve`/`path` of built datasets from the key cache, and `show`/`lineage`/
    `list` from their remembered answers (cli/answers.py), without manifests."""
    if args.command in VIEWS:
        from .views import replay

        return replay(args)
    if args.command not in ("resolve", "path") or getattr(args, "dry_run", False) or \
            getattr(args, "tags", None) or getattr(args, "executor", None) or \
            getattr(args, "repair", False):
        return False
    from ..config import locations
    from ..engine import keycache
    from ..stores import LocalStore

    where = locations(args.root, manifests=args.manifests, store=args.store, catalog=args.catalog)
    if "://" in where.store:
        return False
    names = args.names if args.command == "resolve" else [args.name]
    keys = keycache.lookup(where.state, where.manifests, names) if names else None
    if keys is None:
        return False
    store = LocalStore(where.store)
    try:  # each marker parsed and checked: a damaged one goes the normal path, which says so
        if any(store.marker(keys[n]) is None for n in names):
            return False
    except RegistryError:
        return False
    from . import resolving
    from .display import print_json

    if args.command == "path":
        found = store.local_path(keys[args.name])
        if args.json:
            print_json({"name": args.name, "key": keys[args.name], "path": found})
        else:
            print(found)
        return True
    done = [resolving.outcome(n, "found", keys[n], store.uri(keys[n]))
            for n in dict.fromkeys(names)]
    for one in done:
        resolving.say(one, args)
    if args.json:
        print_json(done)
    return True


VIEWS = ("show", "lineage", "list")  # read-only: each dataset checked as it is used
# what the exit frees without collecting it first (main): the views, and the commands that
# build or index, whose ends a script waits for (what they leave was looked at: see main)
LEFT_TO_THE_EXIT = (*VIEWS, "resolve", "source")


def open_registry(args: argparse.Namespace, *, check_recipes: bool = True) -> Any:
    """The Registry the --root/--manifests/--store/--catalog/--storage-option arguments
    name, with progress bars on a terminal: what a plugin command needing one opens.
    `check_recipes`: see `Registry`."""
    from ..api import Registry
    from ..core.remote import parse_options
    from .display import progress_factory

    return Registry.open(args.root, manifests=args.manifests, store=args.store,
                         catalog=args.catalog,
                         storage_options=parse_options(args.storage_option or []),
                         progress=progress_factory(), caches=getattr(args, "cache", None),
                         update_lock=getattr(args, "update_lock", False),
                         check_recipes=check_recipes)


def _dispatch(args: argparse.Namespace, commands: dict[str, Any],
              collecting: bool = True) -> int | None:
    """Run the command; `collecting`: the cycle collector goes back on (see `main`), but
    not for the views."""
    import gc

    if collecting and args.command not in VIEWS:
        gc.enable()
    if args.command in commands:
        return _run_plugin_command(args, commands[args.command])
    if args.command == "sql":  # the catalog alone: no Registry opened (see cli/sql.py)
        from .sql import sql

        return sql(args)
    from . import handlers

    if args.command == "init":
        return handlers.init(args)
    if args.command == "completion":
        from .completion import script

        sys.stdout.write(script(build_parser(commands), args.shell))
        return 0
    if args.command == "resolve":
        from .resolving import fork_server_ahead

        fork_server_ahead(args)
    # a view binds only the datasets it covers: `show` imports only their recipes
    reg = open_registry(args, check_recipes=args.command not in VIEWS)
    return handlers.HANDLERS[args.command](reg, args)


def _run_plugin_command(args: argparse.Namespace, command: Any) -> int | None:
    """A plugin command's `run`; what it raises that is not a RegistryError (nor an
    OSError, which names its file) is one line naming the command and where it is from."""
    from .. import plugins
    from ..core.failures import summary, traceback_text
    from ..errors import BuildError

    try:
        return command.run(args)  # type: ignore[no-any-return]
    except (RegistryError, OSError):
        raise
    except Exception as exc:
        origin = plugins.PLUGINS.origin("commands", args.command)
        raise BuildError(f"command {args.command!r} (from {origin}) failed: {summary(exc)}",
                         traceback_text(exc)) from exc
