"""A process and its descendants, read from /proc (Linux): their memory and CPU while they run.

A node is several processes: the serving process, the fork server it starts for its blinding
workers, and the workers (the fork server's children). What a city needs is the tree's
together. Two figures for its memory:

- the sum of each process's peak resident set (VmHWM), each peak reset (`clear_refs`) before a
  run: an upper bound, since the processes need not peak at once, and pages the workers share
  with the fork server count in each;
- the peak of the tree's proportional set size (PSS: a shared page split among its sharers),
  sampled every so often: what the tree held at once, give or take a sample's interval.

Reading a process's smaps_rollup for its PSS costs about 2 ms for a process of 400 MB, so PSS
is read less often than CPU; the CPU the sampling thread spends is taken out of the watching
process's own figure.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TICKS = os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except FileNotFoundError:
        return found
    for task in tasks:
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except FileNotFoundError:
            continue
    return found


def tree(pid: int) -> list[int]:
    """`pid` and every process descended from it."""
    found, todo = [], [pid]
    while todo:
        each = todo.pop()
        found.append(each)
        todo += children(each)
    return found


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


def peak_kb(pid: int) -> int:
    """The process's peak resident set since it started or since `reset_peak`."""
    return _status_kb(pid, "VmHWM")


def pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def reset_peak(pid: int) -> None:
    """Start the process's VmHWM again from its resident set now."""
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        Path(f"/proc/{pid}/clear_refs").write_text("5")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU the process has used, its threads included."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


@dataclass(frozen=True)
class Party:
    """A process whose memory and CPU are measured, with its descendants or alone."""

    name: str
    pid: int
    with_descendants: bool = True

    def pids(self) -> list[int]:
        return tree(self.pid) if self.with_descendants else [self.pid]


@dataclass
class PartyUse:
    """What one party used during a measured stretch."""

    name: str
    processes: int = 0
    peak_hwm_sum_mb: float = 0.0  # sum over the processes of each one's VmHWM
    peak_pss_mb: float = 0.0  # the tree's PSS, sampled: the highest sum seen
    cpu_seconds: dict[str, float] = field(default_factory=dict)  # "main", "descendants"

    def to_json(self) -> dict[str, Any]:
        return {"processes": self.processes, "peak_hwm_sum_mb": round(self.peak_hwm_sum_mb, 1),
                "peak_pss_mb": round(self.peak_pss_mb, 1),
                "cpu_seconds": {k: round(v, 2) for k, v in self.cpu_seconds.items()}}


class Watch:
    """Measures parties over a stretch: peaks reset at the start, CPU sampled every `interval`
    seconds and PSS every `pss_interval` (the costly read) on a thread of its own. The timeline:
    seconds since the start, then per party its PSS in MB (None where not read) and the CPU its
    main process and its descendants used since the last sample, in cores."""

    def __init__(self, parties: Sequence[Party], interval: float = 0.25,
                 pss_interval: float = 1.0) -> None:
        self.parties = list(parties)
        self.interval = interval
        self.pss_interval = pss_interval
        self._pss_at = 0.0  # when PSS was last read
        self.timeline: list[dict[str, Any]] = []
        self.use = {p.name: PartyUse(p.name) for p in self.parties}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="proctree-watch", daemon=True)
        self._started = 0.0
        self._cpu_start: dict[str, tuple[float, float]] = {}
        self._last: dict[str, tuple[float, float]] = {}
        self._last_t = 0.0
        self.own_cpu_seconds = 0.0  # this watch's own sampling, on its thread

    def _cpu(self, party: Party) -> tuple[float, float]:
        pids = party.pids()
        main = cpu_seconds(party.pid)
        return main, sum(cpu_seconds(p) for p in pids[1:])

    def __enter__(self) -> Watch:
        for party in self.parties:
            for pid in party.pids():
                reset_peak(pid)
            self._cpu_start[party.name] = self._last[party.name] = self._cpu(party)
        self._started = self._last_t = time.perf_counter()
        self._thread.start()
        return self

    def _sample(self, final: bool = False) -> None:
        now = time.perf_counter()
        point: dict[str, Any] = {"t": round(now - self._started, 2)}
        span = max(now - self._last_t, 1e-6)
        read_pss = final or now - self._pss_at >= self.pss_interval
        if read_pss:
            self._pss_at = now
        for party in self.parties:
            pss = None
            if read_pss:
                pss = round(sum(pss_kb(p) for p in party.pids()) / 1024, 1)
                use = self.use[party.name]
                use.peak_pss_mb = max(use.peak_pss_mb, pss)
            main, rest = self._cpu(party)
            last_main, last_rest = self._last[party.name]
            self._last[party.name] = (main, rest)
            point[party.name] = [pss, round((main - last_main) / span, 2),
                                 round((rest - last_rest) / span, 2)]
        self._last_t = now
        self.timeline.append(point)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()
        self.own_cpu_seconds = time.thread_time()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample(final=True)
        for party in self.parties:
            pids = party.pids()
            use = self.use[party.name]
            use.processes = len(pids)
            use.peak_hwm_sum_mb = sum(peak_kb(p) for p in pids) / 1024
            main, rest = self._cpu(party)
            start_main, start_rest = self._cpu_start[party.name]
            if party.pid == os.getpid():  # the sampling is not the party's work
                main -= self.own_cpu_seconds
            use.cpu_seconds = {"main": main - start_main, "descendants": rest - start_rest}
