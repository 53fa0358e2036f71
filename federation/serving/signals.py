"""What a server process does on SIGINT, SIGTERM and SIGHUP.

A Python signal handler runs in the main thread between two bytecodes, possibly while that thread
holds a lock the handler's action needs: the main thread waiting on an Event holds the Event's
own lock for a moment, and a SIGTERM landing then, which sets that Event, deadlocks the process
for good. So the handlers here only write the signal's number to a pipe, and a thread of their
own reads it and acts, taking whatever locks it needs like any other thread.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable


class StopSignal(threading.Event):
    """Set by SIGINT or SIGTERM; a second one also sets `hurried`, to cut a graceful stop
    short."""

    def __init__(self) -> None:
        super().__init__()
        self.hurried = threading.Event()

    def received(self) -> None:
        if self.is_set():
            self.hurried.set()
        self.set()


def stop_on_signal() -> StopSignal:
    """A StopSignal for SIGINT and SIGTERM; install it before a server starts, so that a signal
    arriving at any moment stops the server cleanly."""
    stop = StopSignal()
    _relay((signal.SIGINT, signal.SIGTERM), stop.received)
    return stop


def reload_on_hangup() -> list[Callable[[], None]]:
    """The actions SIGHUP runs (reading the manifest again), appended once the server runs;
    install it before the server starts, so that SIGHUP never ends the process."""
    actions: list[Callable[[], None]] = []

    def run() -> None:
        for action in actions:
            action()

    _relay((signal.SIGHUP,), run)
    return actions


def _relay(signals: tuple[signal.Signals, ...], action: Callable[[], None]) -> None:
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)

    def received(signum: int, _frame) -> None:
        with contextlib.suppress(BlockingIOError):  # a full pipe holds signals enough to act on
            os.write(write_end, bytes((signum,)))

    def act() -> None:
        while True:
            for _ in os.read(read_end, 64):
                action()

    threading.Thread(target=act, name=f"signals-{'-'.join(s.name for s in signals)}",
                     daemon=True).start()
    for signum in signals:
        signal.signal(signum, received)
