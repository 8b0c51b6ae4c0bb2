"""What the fork server imports first (`processes.PRELOAD`): Ctrl-C is the coordinator's alone.

Ctrl-C sends SIGINT to the terminal's whole process group: the coordinator, its fork
server and every worker. The coordinator stops its pools itself (terminating the build's
workers, cancelling what the others have not begun), but a worker raising
KeyboardInterrupt wherever it stands prints a traceback, and one that stands inside the
pool's call queue may die holding its lock: the other workers then wait on it for ever
and the coordinator's exit joins them (a `registry audit` hung so). The fork server's own
preload, interrupted, printed its traceback too. So the fork server ignores SIGINT from
its first import on; CPython's server ignores it itself only once its preload is done,
and each worker it forks takes the handler it had before then: ignored, here. Imported
anywhere else, this module does nothing."""

from __future__ import annotations

import signal

from .processes import in_fork_server

if in_fork_server():
    signal.signal(signal.SIGINT, signal.SIG_IGN)
