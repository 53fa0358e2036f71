"""How busy the machine was with work other than the benchmark's, section by section.

The machine is shared: other processes (and other virtual machines, as steal time) take CPU
while the benchmark runs. For each section this records the CPU the machine spent outside the
bench process and its node processes, in cores, so that a noisy figure can be recognised.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from benchlib.measure import processes_cpu_seconds


@dataclass(frozen=True)
class Noise:
    section: str
    seconds: float
    bench_cores: float  # the bench process and its nodes
    other_cores: float  # every other process on this machine
    steal_cores: float  # taken by the hypervisor for other machines

    def to_json(self) -> dict[str, Any]:
        return {"section": self.section, "seconds": round(self.seconds, 2),
                "bench_cores": round(self.bench_cores, 3),
                "other_cores": round(self.other_cores, 3),
                "steal_cores": round(self.steal_cores, 3)}


def _machine_seconds() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine since boot, from /proc/stat."""
    with open("/proc/stat") as handle:
        fields = [int(v) for v in handle.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    ticks = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / ticks, steal / ticks


@contextmanager
def measure_noise(section: str, pids: Sequence[int] | Callable[[], Sequence[int]],
                  record: Callable[[Noise], None], children: bool = False) -> Iterator[None]:
    """Time a section and record how much CPU went to work other than the benchmark's. `pids`
    may be a function, asked again at the end: a process started within the section counts
    from zero. With `children`, the bench's child processes that end within the section count
    as its own."""
    def own() -> float:
        reaped = os.times() if children else None
        return (time.process_time() + processes_cpu_seconds(pids() if callable(pids) else pids)
                + (reaped.children_user + reaped.children_system if reaped else 0.0))

    busy, steal = _machine_seconds()
    mine, started = own(), time.perf_counter()
    try:
        yield
    finally:
        seconds = time.perf_counter() - started
        busy_after, steal_after = _machine_seconds()
        bench = own() - mine
        record(Noise(section, seconds, bench / seconds,
                     max(0.0, busy_after - busy - bench) / seconds,
                     (steal_after - steal) / seconds))
