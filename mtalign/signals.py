"""SIGTERM handled like SIGINT (Ctrl-C): what `kill`, `timeout` and SLURM send must stop a run as cleanly as Ctrl-C.

Python turns SIGINT into KeyboardInterrupt, which every runner here already handles (a run marks itself
`interrupted`, a study stops its cells and rewrites its manifest before releasing its lock); SIGTERM kills the
process outright unless handled, leaving children running and files saying `running`. `sigterm_as_interrupt` makes
SIGTERM raise the same KeyboardInterrupt; `deferred` holds both signals back while a few files record how a run ended.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from pathlib import Path
from typing import Iterator

received: int | None = None  # the last signal turned into KeyboardInterrupt here (the CLI exits 128 + it)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _raise_interrupt(signum, frame) -> None:
    global received
    received = signum
    raise KeyboardInterrupt(f"stopped by {signal.Signals(signum).name}")


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM raises KeyboardInterrupt in the main thread (elsewhere signals cannot be handled)."""
    if not _main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """SIGINT and SIGTERM wait (pending) until the block ends: a second Ctrl-C cannot cut a status write in half."""
    if not _main_thread():
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def children(pid: int) -> list[int]:
    """The live child processes of `pid` (Linux /proc; an empty list elsewhere)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def descendants(pid: int) -> list[int]:
    """Children, grandchildren, ... of `pid`, parents before their children."""
    out, todo = [], [pid]
    while todo:
        for child in children(todo.pop()):
            out.append(child)
            todo.append(child)
    return out


def send(pids: list[int], signum: int) -> None:
    """Send `signum` to each process that still exists."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)
