"""One watchdog thread for every running query's deadline, instead of a timer thread each
(starting a thread per query cost more than a small query itself)."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable


class Watch:
    """A pending action; cancelling it lets go of the action (and what it holds, such as a
    query's cursor) at once, not when its deadline would have passed."""

    __slots__ = ("_watchdog", "action")

    def __init__(self, watchdog: Watchdog, action: Callable[[], None]) -> None:
        self._watchdog = watchdog
        self.action: Callable[[], None] | None = action

    def cancel(self) -> None:
        self._watchdog._cancel(self)


class Watchdog:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Watch]] = []
        self._cancelled_in_heap = 0
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="deadline-watchdog", daemon=True)
        self._thread.start()

    def call_after(self, seconds: float, action: Callable[[], None]) -> Watch:
        """Run `action` after `seconds`, unless the returned watch is cancelled first."""
        watch = Watch(self, action)
        deadline = time.monotonic() + seconds
        with self._wake:
            heapq.heappush(self._heap, (deadline, next(self._order), watch))
            if self._heap[0][2] is watch:  # wake the watchdog only for a new earliest deadline
                self._wake.notify()
        return watch

    def pending(self) -> int:
        """Watches in the heap, cancelled ones not yet swept included."""
        with self._wake:
            return len(self._heap)

    def _cancel(self, watch: Watch) -> None:
        # Most queries finish long before their deadline: sweep the heap once half of it is
        # cancelled, so it stays as small as the queries actually running.
        with self._wake:
            if watch.action is None:  # already run, or already cancelled
                return
            watch.action = None
            self._cancelled_in_heap += 1
            if self._cancelled_in_heap * 2 > len(self._heap):
                self._heap = [entry for entry in self._heap if entry[2].action is not None]
                heapq.heapify(self._heap)
                self._cancelled_in_heap = 0

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._wake.wait(timeout)
                _, _, watch = heapq.heappop(self._heap)
                action, watch.action = watch.action, None
                if action is None:
                    self._cancelled_in_heap -= 1
            if action is not None:
                action()


WATCHDOG = Watchdog()
