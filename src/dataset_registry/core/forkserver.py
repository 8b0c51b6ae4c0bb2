"""What the fork server imports for itself (`processes.PRELOAD`, last): at its exit, it skips
the interpreter's teardown.

The fork server lives as long as the coordinator and exits when it does, and it holds the
coordinator's stdout and stderr (its workers print there). Whoever reads those to their end
(`$(registry resolve NAME)`, `subprocess.run(..., capture_output=True)`) waits for it as
well: its ordinary exit frees every module it preloaded (numpy, Pillow, the recipes),
~40 ms after the coordinator's own (2 cores), the command's output open all that time. It
has nothing to finalise: it forks workers, each its own process, and its listening socket
is the coordinator's. So it leaves with `os._exit(0)`, its output flushed, first of its exit
handlers. Imported anywhere else, this module does nothing."""

from __future__ import annotations

import atexit
import contextlib
import os
import sys

from .processes import in_fork_server


def _leave() -> None:
    """End the fork server now, what it printed flushed first."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # (a closed or broken stream: nothing to save)
            stream.flush()
    os._exit(0)


if in_fork_server():
    atexit.register(_leave)  # (run first: the last registered, after the preload's)
