"""What a server process does on SIGINT, SIGTERM and SIGHUP.

Two traps of Python's signal handling are avoided here. A Python handler runs only in the main
thread, between two bytecodes: one that acted itself could run while the main thread holds a
lock the action needs (waiting on an Event holds the Event's own lock for a moment) and deadlock
the process. And a signal the kernel delivers to another thread (gRPC's, DuckDB's) never wakes
a main thread blocked in a wait, so its handler would not run until the wait ended.

So the Python handlers do nothing, and a thread of our own acts instead: Python's C-level
handler, in whatever thread the signal lands, writes the signal's number to the wakeup file
descriptor (`signal.set_wakeup_fd`), and that thread reads it there.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable

_actions: dict[int, list[Callable[[], None]]] = {}
_started = threading.Lock()


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
    """A StopSignal for SIGINT and SIGTERM; install it (from the main thread) before a server
    starts, so that a signal arriving at any moment stops the server cleanly."""
    stop = StopSignal()
    _on((signal.SIGINT, signal.SIGTERM), stop.received)
    return stop


def reload_on_hangup() -> list[Callable[[], None]]:
    """The actions SIGHUP runs (reading the manifest again), appended once the server runs;
    install it before the server starts, so that SIGHUP never ends the process."""
    actions: list[Callable[[], None]] = []

    def run() -> None:
        for action in list(actions):
            action()

    _on((signal.SIGHUP,), run)
    return actions


def _on(signals: tuple[signal.Signals, ...], action: Callable[[], None]) -> None:
    with _started:
        if not _actions:
            _start_relay()
        for signum in signals:
            _actions.setdefault(signum, []).append(action)
            signal.signal(signum, _ignore_here)


def _ignore_here(_signum: int, _frame) -> None:
    """The relay thread acts; a handler must exist for the C-level one to write the number."""


def _start_relay() -> None:
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)

    def relay() -> None:
        while True:
            for signum in os.read(read_end, 64):
                for action in _actions.get(signum, ()):
                    action()

    threading.Thread(target=relay, name="signals", daemon=True).start()
