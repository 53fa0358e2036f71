"""The node's one deadline watchdog: actions run when due, cancelled ones never, and a finished
query's watch (holding its cursor) is let go at once rather than kept until its deadline."""

from __future__ import annotations

import gc
import threading
import time
import weakref

from node.deadlines import Watchdog


def test_an_action_runs_once_its_deadline_passes():
    watchdog, ran = Watchdog(), threading.Event()
    started = time.monotonic()
    watchdog.call_after(0.05, ran.set)
    assert ran.wait(5)
    assert time.monotonic() - started >= 0.05


def test_a_cancelled_action_never_runs():
    watchdog, ran = Watchdog(), threading.Event()
    watchdog.call_after(0.05, ran.set).cancel()
    assert not ran.wait(0.3)


def test_an_earlier_deadline_added_later_is_not_kept_waiting_behind_a_later_one():
    watchdog, ran = Watchdog(), threading.Event()
    watchdog.call_after(60, lambda: None)
    time.sleep(0.05)  # the watchdog now sleeps until the 60 s deadline
    watchdog.call_after(0.05, ran.set)
    assert ran.wait(5)


def test_a_later_deadline_does_not_run_early():
    watchdog, ran = Watchdog(), threading.Event()
    first = threading.Event()
    watchdog.call_after(0.05, first.set)
    watchdog.call_after(0.5, ran.set)
    assert first.wait(5)
    assert not ran.is_set()
    assert ran.wait(5)


def test_cancelled_watches_do_not_pile_up_until_their_deadlines():
    """A node answers thousands of queries a minute, each with a deadline of many seconds;
    every finished one cancels its watch."""
    watchdog = Watchdog()
    running = watchdog.call_after(60, lambda: None)  # one query still running throughout
    for _ in range(10_000):
        watchdog.call_after(60, lambda: None).cancel()
    assert watchdog.pending() <= 3
    running.cancel()


def test_cancelling_lets_go_of_what_the_action_holds():
    class Cursor:
        pass

    watchdog, cursor = Watchdog(), Cursor()
    held = weakref.ref(cursor)
    watch = watchdog.call_after(60, lambda cursor=cursor: cursor)
    del cursor
    gc.collect()
    assert held() is not None
    watch.cancel()
    gc.collect()
    assert held() is None


def test_cancelling_after_the_action_ran_is_harmless():
    watchdog, ran = Watchdog(), threading.Event()
    watch = watchdog.call_after(0.01, ran.set)
    assert ran.wait(5)
    watch.cancel()
    watch.cancel()
    nxt = threading.Event()
    watchdog.call_after(0.01, nxt.set)
    assert nxt.wait(5)
