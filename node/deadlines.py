"""One watchdog thread for every running query's deadline, instead of a timer thread each
(starting a thread per query cost more than a small query itself)."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable


class Watch:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Watchdog:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Watch, Callable[[], None]]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="deadline-watchdog", daemon=True)
        self._thread.start()

    def call_after(self, seconds: float, action: Callable[[], None]) -> Watch:
        """Run `action` after `seconds`, unless the returned watch is cancelled first."""
        watch = Watch()
        with self._wake:
            heapq.heappush(self._heap, (time.monotonic() + seconds, next(self._order), watch,
                                        action))
            self._wake.notify()
        return watch

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._wake.wait(timeout)
                _, _, watch, action = heapq.heappop(self._heap)
            if not watch.cancelled:
                action()


WATCHDOG = Watchdog()
