"""Commands plugins add to `registry`: the `commands` plugin kind.

A command is registered like any plugin (entry-point group `dataset_registry.commands`,
or `plugins.register("commands", NAME, target)` in a project's registry.toml module),
NAME being the word after `registry`. The target is an object, or a class made with no
arguments, with

- `help`: the one line `registry --help` shows;
- `add_arguments(parser)`: its options, on an argparse parser that already has the
  --root/--store/... options (`args.root` etc.; adding one of them again is refused);
- `run(args) -> int`: the exit code. Errors are raised as `RegistryError`s; the CLI
  prints the message and exits with its code (2 bad input, 1 failure).

`Command` below is a base to subclass, not a requirement. A command needing the
registry opens it with `dataset_registry.cli.open_registry(args)`.

Listing them imports their modules (for the help lines) and reads the installed
distributions' entry points, which costs tens of milliseconds: the CLI loads them only
when the command line does not name a core command (`--help`, or a plugin's command),
so `registry resolve` answers as fast as before.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import PluginError
from .parser import CORE


class Command:
    """A `registry` subcommand (subclassing is optional: the three names are what count)."""

    help: str = ""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add the command's arguments (none by default)."""

    def run(self, args: argparse.Namespace) -> int:
        raise NotImplementedError


def load_commands(root: str) -> tuple[dict[str, Any], dict[str, PluginError]]:
    """(the plugin commands that work, by name, sorted; what is wrong with the others,
    by name). Each is checked on its own, so one broken plugin does not take every
    other plugin's commands with it: a name taken by a core command, a target that does
    not import, lacks a help line, `run` or `add_arguments`, or whose `add_arguments`
    fails is a PluginError naming where it came from. A broken registry.toml raises."""
    from .. import plugins

    plugins.load_project(root)  # a project's plugin modules may register commands
    found: dict[str, Any] = {}
    broken: dict[str, PluginError] = {}
    for name in plugins.names("commands"):
        origin = plugins.PLUGINS.origin("commands", name)
        try:
            if name in CORE:
                raise PluginError(f"command {name!r} from {origin} clashes with the core "
                                  f"command `registry {name}`; rename it")
            found[name] = _command(plugins.get("commands", name), name, origin)
        except PluginError as exc:
            broken[name] = exc
        except Exception as exc:  # e.g. its class's __init__ or help property raising
            broken[name] = PluginError(f"command {name!r} from {origin}: "
                                       f"{type(exc).__name__}: {exc}")
    return found, broken


def _command(target: Any, name: str, origin: str) -> Any:
    if isinstance(target, type):
        try:
            target = target()
        except Exception as exc:
            raise PluginError(f"command {name!r} from {origin}: {target.__name__}() "
                              f"failed: {exc}") from None
    missing = [what for what in ("add_arguments", "run")
               if not callable(getattr(target, what, None))]
    if not isinstance(getattr(target, "help", None), str) or not target.help:
        missing.insert(0, "help (a one-line string)")
    if missing:
        raise PluginError(f"command {name!r} from {origin} is not a command: it has no "
                          f"{', '.join(missing)}")
    from .parser import add_command_arguments

    # its options on a throwaway parser made as the real one is (-h included): the real
    # parser is then built without surprises
    probe = argparse.ArgumentParser(prog=f"registry {name}")
    try:
        add_command_arguments(probe, target)
    except Exception as exc:
        raise PluginError(f"command {name!r} from {origin}: add_arguments failed: {exc}"
                          ) from None
    return target
