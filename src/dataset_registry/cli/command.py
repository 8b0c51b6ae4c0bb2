"""Commands plugins add to `registry`: the `commands` plugin kind.

A command is registered like any plugin (entry-point group `dataset_registry.commands`,
or `plugins.register("commands", NAME, target)` in a project's registry.toml module),
NAME being the word after `registry`. The target is an object, or a class made with no
arguments, with

- `help`: the one line `registry --help` shows;
- `add_arguments(parser)`: its options, on an argparse parser (the --root/--store/...
  options are already there: `args.root` etc.);
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


def load_commands(root: str) -> dict[str, Any]:
    """The plugin commands by name, sorted: entry points and `root`'s registry.toml
    plugins. A name taken by a core command, or a target without a help line, `run`
    or `add_arguments`, is a PluginError naming where it came from."""
    from .. import plugins

    plugins.load_project(root)  # a project's plugin modules may register commands
    found: dict[str, Any] = {}
    for name in plugins.names("commands"):
        origin = plugins.PLUGINS.origin("commands", name)
        if name in CORE:
            raise PluginError(f"command {name!r} from {origin} clashes with the core command "
                              f"`registry {name}`; rename it")
        found[name] = _command(plugins.get("commands", name), name, origin)
    return found


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
    return target
