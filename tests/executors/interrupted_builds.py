"""Run by test_local.py as its own process: ROUNDS builds of many small tasks on a pool of
2, each sent SIGINT (by a thread of this process) at a random moment while the coordinator
collects the tasks' results. A round prints one line: how long the build took to stop once
interrupted, what it left in the store's staging area and which of its workers still ran.

A build that never stops is what the test looks for (a handler's KeyboardInterrupt raised
inside concurrent.futures.wait left futures' locks taken: core/interrupts.py), so it runs
in a process the test can kill. Usage: interrupted_builds.py FOLDER ROUNDS SEED
"""

from __future__ import annotations

import contextlib
import glob
import os
import random
import signal
import sys
import threading
import time
from pathlib import Path

import psutil

from dataset_registry.testing.echo import use_echo
from dataset_registry.testing.sources import open_project, write_image_folder


def interrupt_once_writing(staging: Path, delay: float, sent: list[float],
                           finished: threading.Event) -> None:
    """SIGINT to this process `delay` seconds after a task has written part of its file
    table under `staging` (the pool is then working), unless the build has `finished`."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not finished.is_set():
        if glob.glob(str(staging / "*/.parts/*.csv")):
            if not finished.wait(delay):
                sent.append(time.monotonic())
                os.kill(os.getpid(), signal.SIGINT)
            return
        time.sleep(0.005)


def main(folder: str, rounds: int, seed: int) -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)  # whatever the parent had
    rng = random.Random(seed)
    source = write_image_folder(Path(folder, "data"), n=3000)
    with use_echo():
        reg = open_project(Path(folder, "project"), {"data": source}, [
            {"name": "many", "recipe": "echo", "inputs": {"images": "data"},
             "params": {"chunk": 2, "validate_images": False}}])
        staging = Path(reg.store.root, ".staging")
        me = psutil.Process()
        for round_ in range(rounds):
            sent: list[float] = []
            finished = threading.Event()
            signaller = threading.Thread(target=interrupt_once_writing, args=(
                staging, rng.uniform(0.0, 0.6), sent, finished))
            signaller.start()
            with contextlib.suppress(KeyboardInterrupt):
                try:
                    reg.resolve("many", jobs=2)
                finally:
                    finished.set()
            stopped = time.monotonic()
            with contextlib.suppress(KeyboardInterrupt):  # sent as the build ended: too late
                signaller.join()
            if reg.status("many") == "built":  # the signal came too late: proves nothing
                print(f"round {round_}: built before the signal", flush=True)
                reg.store.delete(reg.key("many"))
                continue
            # the pool's workers are children of the fork server, itself a child of this
            workers = [p for c in me.children() for p in c.children()
                       if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
            print(f"round {round_}: interrupted in {stopped - sent[0]:.2f} s, staging "
                  f"{sorted(os.listdir(staging)) if staging.exists() else []}, "
                  f"workers {[p.pid for p in workers]}, status {reg.status('many')}",
                  flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
