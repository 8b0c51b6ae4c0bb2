"""What the fork server imports first (`processes.PRELOAD`): Ctrl-C is its coordinator's.

Ctrl-C sends SIGINT to the terminal's whole process group, the fork server and every
worker included. CPython's server ignores SIGINT itself only once its preload is imported
(before, Ctrl-C interrupted the imports, and the server printed a traceback and died), and
each worker it forks starts with the handler the server had then. So from here on the
server's handler is one that does nothing (`processes.leave_ctrl_c_to_the_coordinator`'s):
the preload goes on, and every worker starts with it, before any of its own code runs (a
worker given it later, by its pool's initializer, could be killed while it started, and
its pool broken). A Python function, not SIG_IGN: a program a task runs (exec) gets SIGINT
at its default. The server is the process's one fork server: a pool of another library's
made on it after ours gets such workers too (its coordinator still gets Ctrl-C). Not
covered: the server's first moments, its interpreter starting, multiprocessing's own
imports and the main module, which it imports before its preload list (up to a few tenths
of a second on a busy 2-core machine): Ctrl-C there still prints the server's traceback
(the command itself stops as it should, exit 130). Imported anywhere else, this module
does nothing."""

from __future__ import annotations

from .processes import in_fork_server, leave_ctrl_c_to_the_coordinator

if in_fork_server():
    leave_ctrl_c_to_the_coordinator()
