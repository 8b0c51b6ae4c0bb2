"""What the fork server imports first (`processes.PRELOAD`): Ctrl-C spares its preload.

Ctrl-C sends SIGINT to the terminal's whole process group, the fork server included.
CPython's server ignores SIGINT itself only once its preload is imported; before, Ctrl-C
interrupted the imports (numpy, the recipes), and the server printed a traceback and died.
So from here to the preload's end (core/forkserver.py gives Python's own handler back)
its handler is one that does nothing. The main module, which the server imports before
its preload list (the `registry` script: a few ms), is not covered. Imported anywhere
else, this module does nothing."""

from __future__ import annotations

import signal

from .processes import _ctrl_c_left_to_the_coordinator, in_fork_server

if in_fork_server():
    signal.signal(signal.SIGINT, _ctrl_c_left_to_the_coordinator)
