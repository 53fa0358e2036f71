"""The performance targets, each checked against what the run measured."""

from __future__ import annotations

from dataclasses import dataclass

from benchlib.measure import Comparison
from benchlib.queries import SMALL
from benchlib.results import BenchResults

NOT_MEASURED = "not measured"


@dataclass(frozen=True)
class Verdict:
    target: str
    goal: str
    measured: str
    status: str  # PASS, MISS, not measured
    scale: str


def verdicts(results: BenchResults) -> list[Verdict]:
    found = [
        _headline(results),
        *([_private_pushdown(results)] if results.private else []),
        _city_sweep(results),
        *_small_latency(results),
        *_throughput(results),
        _security(results),
    ]
    if results.mode.startswith("private-"):  # a partial run: only what it set out to measure
        found = [v for v in found if v.status != NOT_MEASURED]
    return found


def _status(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _rows(n: int) -> str:
    return f"{n:,}"


def _ratios(comparisons: list[Comparison], limit: float, target: str, goal: str,
            scale: str) -> Verdict:
    if not comparisons:
        return Verdict(target, goal, "—", NOT_MEASURED, scale)
    worst = max(comparisons, key=lambda c: c.ratio)
    detail = ", ".join(f"{c.query}@{c.cities}: {c.ratio:.2f}×" for c in comparisons)
    return Verdict(target, goal, f"worst {worst.ratio:.2f}× ({detail})",
                   _status(worst.ratio <= limit), scale)


def _headline(results: BenchResults) -> Verdict:
    if results.private:  # issue 9: the deployed policy, private answers, against no privacy
        target = "Private answers (deployed policy) vs central without privacy, 5 cities × 10M"
        limit = 1.5
    else:
        target, limit = "Federated vs central, 5 cities × 10M rows", 1.10
    goal = f"p50 ≤ {limit:.2f}× central"
    if not results.rows_sweep:
        return Verdict(target, goal, "—", NOT_MEASURED, "")
    largest = max(c.rows_per_city for c in results.rows_sweep)
    chosen = [c for c in results.rows_sweep if c.rows_per_city == largest]
    return _ratios(chosen, limit, target, goal, f"5 × {_rows(largest)} rows")


def _private_pushdown(results: BenchResults) -> Verdict:
    target = "Private answers vs pulling the raw rows (in-process floor), 10M rows per city"
    goal = "naive p50 ≥ 3× private p50"
    if not results.naive:
        return Verdict(target, goal, "—", NOT_MEASURED, "")
    largest = max(results.naive, key=lambda n: n.rows_per_city)
    measured = (f"{largest.gain:.2f}× ({largest.query}: naive {largest.naive.p50:,.0f} ms, "
                f"private {largest.federated.p50:,.0f} ms)")
    return Verdict(target, goal, measured, _status(largest.gain >= 3.0),
                   f"{largest.cities} × {_rows(largest.rows_per_city)} rows")


def _city_sweep(results: BenchResults) -> Verdict:
    chosen = [c for c in results.city_sweep if 3 <= c.cities <= 8]
    rows = chosen[0].rows_per_city if chosen else 0
    return _ratios(chosen, 1.30, "Federated vs central, 3–8 cities × 1M rows",
                   "p50 ≤ 1.30× central", f"3–8 × {_rows(rows)} rows")


def _small_latency(results: BenchResults) -> list[Verdict]:
    scale = f"× {_rows(results.latency_rows)} rows"
    five, eight = (results.federated_latency(SMALL.name, n) for n in (5, 8))
    out = []
    for samples, cities, label, value, limit in (
            (five, 5, "p50", lambda s: s.p50, 4.0), (five, 5, "p99", lambda s: s.p99, 10.0),
            (eight, 8, "p50", lambda s: s.p50, 6.0)):
        target = f"Small query end to end, {cities} cities"
        goal = f"{label} ≤ {limit:g} ms"
        if samples is None:
            out.append(Verdict(target, goal, "—", NOT_MEASURED, f"{cities} {scale}"))
            continue
        samples = samples.samples
        measured = value(samples)
        out.append(Verdict(target, goal, f"{measured:.2f} ms ({samples.n} runs)",
                           _status(measured <= limit), f"{cities} {scale}"))
    return out


def _throughput(results: BenchResults) -> list[Verdict]:
    if not results.throughput:
        return [Verdict("Throughput, 16 concurrent clients, 5 cities", "≥ 250 q/s", "—",
                        NOT_MEASURED, "")]
    out = []
    small = [t for t in results.throughput if t.query == SMALL.name]
    for mode in dict.fromkeys(t.mode for t in small):
        runs = [t for t in small if t.mode == mode]
        best = max(runs, key=lambda t: t.qps)
        measured = (f"{best.qps:.0f} q/s (best of {len(runs)}: "
                    + ", ".join(f"{t.qps:.0f}" for t in runs) + ")")
        out.append(Verdict(f"Throughput, {best.clients} concurrent clients, {mode}",
                           "≥ 250 q/s", measured, _status(best.qps >= 250),
                           f"{best.cities} × {_rows(results.latency_rows)} rows, "
                           f"{best.queries} questions"))
    return out


def _security(results: BenchResults) -> Verdict:
    target, goal = "Security + audit overhead per question", "≤ 0.8 ms"
    costs = results.security
    if costs is None:
        return Verdict(target, goal, "—", NOT_MEASURED, "")
    untimed = [part for part, note in costs.notes.items() if not note.startswith("not applied")]
    measured = (f"{costs.critical_path_ms:.2f} ms on the critical path (coordinator "
                f"{costs.coordinator_ms:.2f} + one node {costs.node_ms:.2f} + mutual TLS "
                f"{costs.tls_wall_ms:.2f}); "
                f"{costs.cpu_ms:.2f} ms CPU over {costs.cities} cities")
    status = _status(costs.critical_path_ms <= 0.8) + (" (partial)" if untimed else "")
    scale = f"not timed: {', '.join(untimed)}" if untimed else "5 × 100,000 rows, small query"
    return Verdict(target, goal, measured, status, scale)
