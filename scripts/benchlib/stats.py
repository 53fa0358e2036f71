"""Latency samples and their summaries."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Samples:
    """Wall-clock durations of repeated runs, in milliseconds."""

    ms: list[float] = field(default_factory=list)

    def add(self, value_ms: float) -> None:
        self.ms.append(value_ms)

    @property
    def n(self) -> int:
        return len(self.ms)

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.ms, q)) if self.ms else float("nan")

    @property
    def p50(self) -> float:
        return self.percentile(50)

    @property
    def p99(self) -> float:
        return self.percentile(99)

    @property
    def mean(self) -> float:
        return float(np.mean(self.ms)) if self.ms else float("nan")

    def summary(self) -> dict[str, Any]:
        return {"n": self.n, "p50_ms": round(self.p50, 4), "p99_ms": round(self.p99, 4),
                "mean_ms": round(self.mean, 4),
                "min_ms": round(min(self.ms), 4) if self.ms else None,
                "max_ms": round(max(self.ms), 4) if self.ms else None,
                "samples_ms": [round(v, 4) for v in self.ms]}


def timed(function: Callable[..., Any], *args, **kwargs) -> tuple[Any, float]:
    """Call `function` and return its result and how long it took, in milliseconds."""
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, (time.perf_counter() - started) * 1000


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else float("nan")
