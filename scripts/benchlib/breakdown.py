"""Where the time of one small federated question goes.

Coordinator stages are timed on the real path: `Coordinator.ask_sql` runs unchanged while the
functions it calls (`parse_query`, `check_query`, `mint_token`, `merge_partials`, `finish`, and
`verify_receipt` where it exists) are wrapped with timers. What remains of the end-to-end time
is the fan-out: the gRPC calls over mutual TLS and the nodes' work. The node's data path is
timed in this process on snapshot copies of the city files, doing what
`NodeServicer.Aggregate` does, step by step: for an exact answer (a row grant) compile, run,
convert; for a private one (the `aggregate` level) compile the bounded plan, charge the privacy
budget (a SQLite transaction), run, noise and release the groups with OpenDP. A private
breakdown also runs the exact plan beside the bounded one, to show what bounding costs or saves.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cityfed.v1 import node_pb2

import federation.coordination.coordinator as coordinator_module
from benchlib.measure import Federation, processes_cpu_seconds
from benchlib.stats import Samples, timed
from federation.query.plan import check_plan, parse_plan
from federation.query.sandbox import sandboxed_connection
from federation.query.sql import parse_query
from node.budget import BudgetLimits, PrivacyBudget
from node.compile import compile_plan, compile_private_plan
from node.policy import PrivacySettings
from node.release import charge_of, exact_groups, release

# Functions the coordinator module calls per question, timed where the module has them.
COORDINATOR_FUNCTIONS = ("parse_query", "check_query", "mint_token", "verify_receipt",
                         "merge_partials", "finish", "column_accuracy")

# The steps of one request at a node, exact and private; the name of the DuckDB step in each.
COMPILE, DUCKDB, SERIALIZE = ("decode + check + compile plan", "DuckDB execute + fetch",
                              "serialize response")
EXACT_STEPS = (COMPILE, DUCKDB, "rows → PartialGroups", SERIALIZE)
BUDGET = "privacy budget charge (SQLite transaction)"
BOUNDED = "DuckDB execute + fetch, bounded plan (≤ max rows per person, clamped)"
NOISE = "noise + group release (OpenDP)"
PRIVATE_STEPS = ("decode + check + compile private plan", BUDGET, BOUNDED, NOISE, SERIALIZE)
# Run beside a private request's steps for comparison, not part of it.
EXACT_REFERENCE = "for comparison: DuckDB execute + fetch of the exact plan (every row)"


@dataclass
class Breakdown:
    cities: int
    rows_per_city: int
    end_to_end: Samples = field(default_factory=Samples)
    coordinator: dict[str, Samples] = field(default_factory=dict)
    fan_out: Samples = field(default_factory=Samples)
    node: dict[str, Samples] = field(default_factory=dict)
    transport_floor: Samples = field(default_factory=Samples)
    transport_floor_pooled: Samples = field(default_factory=Samples)
    client_cpu_ms: float = 0.0  # per question, this process
    node_cpu_ms: float = 0.0  # per question, all node processes together
    parallel_stages: list[str] = field(default_factory=list)  # run a city each, on pool threads
    private: bool = False  # the node steps are a private answer's

    @property
    def node_p50_per_city(self) -> float:
        """The node's data path per request (the exact reference run of a private breakdown
        left out)."""
        return sum(s.p50 for name, s in self.node.items() if name != EXACT_REFERENCE)

    @property
    def duckdb_ms(self) -> float:
        """The DuckDB run of the city's part of the question, as this policy makes it."""
        return self.node[BOUNDED if self.private else DUCKDB].p50

    @property
    def bounding_ms(self) -> float:
        """What the bounded plan costs over the exact one (negative: it saves)."""
        return self.node[BOUNDED].p50 - self.node[EXACT_REFERENCE].p50

    def to_json(self) -> dict[str, Any]:
        return {"cities": self.cities, "rows_per_city": self.rows_per_city,
                "private": self.private, "end_to_end": self.end_to_end.summary(),
                "coordinator": {k: v.summary() for k, v in self.coordinator.items()},
                "coordinator_parallel_stages": self.parallel_stages,
                "fan_out": self.fan_out.summary(),
                "node_per_city": {k: v.summary() for k, v in self.node.items()},
                "transport_floor_getnodeinfo": self.transport_floor.summary(),
                "transport_floor_getnodeinfo_pooled": self.transport_floor_pooled.summary(),
                "client_cpu_ms_per_question": round(self.client_cpu_ms, 4),
                "node_cpu_ms_per_question": round(self.node_cpu_ms, 4)}


class StageTimers:
    """Wraps functions of a module with timers. A function called several times in one
    question (one token per city) counts once, with the sum of its calls; one called on other
    threads than the asking one (the coordinator's pool, a city each) is marked parallel."""

    def __init__(self, module, names: tuple[str, ...]) -> None:
        self.module = module
        self.names = tuple(n for n in names if hasattr(module, n))
        self.stages = {name: Samples() for name in self.names}
        self.parallel: set[str] = set()
        self._pending: dict[str, float] = defaultdict(float)
        self._lock = threading.Lock()
        self._asking = threading.get_ident()

    def end_question(self) -> float:
        """Close one question's figures; returns the sum of the stages that ran on the asking
        thread, in milliseconds (the parallel ones overlap the waiting for cities)."""
        with self._lock:
            for name in self.names:
                self.stages[name].add(self._pending[name])
            serial = sum(ms for name, ms in self._pending.items() if name not in self.parallel)
            self._pending.clear()
        return serial

    @contextmanager
    def installed(self) -> Iterator[StageTimers]:
        originals = {name: getattr(self.module, name) for name in self.names}

        def wrap(name: str, function):
            def timed_stage(*args, **kwargs):
                result, ms = timed(function, *args, **kwargs)
                with self._lock:
                    self._pending[name] += ms
                    if threading.get_ident() != self._asking:
                        self.parallel.add(name)
                return result
            return timed_stage

        for name, function in originals.items():
            setattr(self.module, name, wrap(name, function))
        try:
            yield self
        finally:
            for name, function in originals.items():
                setattr(self.module, name, function)


def coordinator_breakdown(federation: Federation, sql: str, *, runs: int, warmup: int,
                          node_pids: list[int], result: Breakdown) -> None:
    """Stage times on the real path, and the CPU one question costs this process and the nodes
    (questions asked one at a time)."""
    for _ in range(warmup):
        federation.run(sql)
    timers = StageTimers(coordinator_module, COORDINATOR_FUNCTIONS)
    client_cpu, node_cpu = time.process_time(), processes_cpu_seconds(node_pids)
    with timers.installed():
        for _ in range(runs):
            _, total = timed(federation.run, sql)
            result.end_to_end.add(total)
            result.fan_out.add(total - timers.end_question())
    result.client_cpu_ms = (time.process_time() - client_cpu) * 1000 / runs
    result.node_cpu_ms = (processes_cpu_seconds(node_pids) - node_cpu) * 1000 / runs
    result.coordinator = timers.stages
    result.parallel_stages = sorted(timers.parallel)


def node_breakdown(snapshots: list[Path], sql: str, *, threads: int, memory_limit: str,
                   runs: int, warmup: int, result: Breakdown,
                   privacy: PrivacySettings | None = None) -> None:
    """Each city's share of the work, run here on a snapshot copy of its file: an exact answer,
    or with `privacy` (the policy's settings) a private one."""
    plan_bytes = parse_query(sql).plan.SerializeToString()
    result.private = privacy is not None
    names = (*PRIVATE_STEPS, EXACT_REFERENCE) if privacy else EXACT_STEPS
    result.node = {name: Samples() for name in names}
    with _scratch_budget() as budget:
        for snapshot in snapshots:
            connection = sandboxed_connection(snapshot, read_only=True, threads=threads,
                                              memory_limit=memory_limit)
            try:
                for index in range(warmup + runs):
                    steps = (_private_steps(connection, plan_bytes, privacy, budget) if privacy
                             else _exact_steps(connection, plan_bytes))
                    if index >= warmup:
                        for name, ms in zip(names, steps, strict=True):
                            result.node[name].add(ms)
            finally:
                connection.close()


@contextmanager
def _scratch_budget() -> Iterator[PrivacyBudget]:
    """A budget ledger like a node's (SQLite, WAL, in a fresh folder)."""
    with tempfile.TemporaryDirectory(prefix="cityfed-bench-budget-") as directory:
        budget = PrivacyBudget(Path(directory) / "budget.sqlite")
        try:
            yield budget
        finally:
            budget.close()


def _compile(plan_bytes: bytes):
    plan = parse_plan(plan_bytes)
    check_plan(plan)
    return compile_plan(plan)


def _compile_private(plan_bytes: bytes, privacy: PrivacySettings):
    plan = parse_plan(plan_bytes)
    check_plan(plan)
    return compile_private_plan(plan, privacy.of(plan.dataset))


def _exact_steps(connection, plan_bytes: bytes) -> tuple[float, ...]:
    compiled, compile_ms = timed(_compile, plan_bytes)
    rows, duckdb_ms = timed(_run_on_cursor, connection, compiled)
    groups, partials_ms = timed(exact_groups, rows, compiled)
    _, serialize_ms = timed(lambda: node_pb2.AggregateResponse(
        city="x", groups=groups).SerializeToString())
    return compile_ms, duckdb_ms, partials_ms, serialize_ms


def _private_steps(connection, plan_bytes: bytes, privacy: PrivacySettings,
                   budget: PrivacyBudget) -> tuple[float, ...]:
    """What NodeServicer.Aggregate does for a private answer, step by step; then the exact plan
    on the same connection, for comparison."""
    private, compile_ms = timed(_compile_private, plan_bytes, privacy)
    epsilon, delta = charge_of(private, privacy.epsilon_per_question,
                               privacy.delta_per_question)
    unlimited = BudgetLimits(float("inf"), 1.0, privacy.period)
    _, budget_ms = timed(budget.charge, "bench-caller", "transit-planning", epsilon, delta,
                         unlimited)
    rows, bounded_ms = timed(_run_on_cursor, connection, private)
    released, noise_ms = timed(release, rows, private, epsilon=epsilon, delta=delta)
    _, serialize_ms = timed(lambda: node_pb2.AggregateResponse(
        city="x", groups=released.groups, privacy=released.report).SerializeToString())
    _, exact_ms = timed(_run_on_cursor, connection, _compile(plan_bytes))
    return compile_ms, budget_ms, bounded_ms, noise_ms, serialize_ms, exact_ms


def _run_on_cursor(connection, compiled) -> list[tuple]:
    cursor = connection.cursor()
    try:
        cursor.execute(compiled.sql, compiled.params)
        return cursor.fetchmany(100_001)
    finally:
        cursor.close()


def answer_bytes(snapshots: list[Path], sql: str, *, threads: int, memory_limit: str,
                 privacy: PrivacySettings | None = None) -> int:
    """The bytes of the AggregateResponse messages all cities send back for one question."""
    plan_bytes = parse_query(sql).plan.SerializeToString()
    total = 0
    for snapshot in snapshots:
        connection = sandboxed_connection(snapshot, read_only=True, threads=threads,
                                          memory_limit=memory_limit)
        try:
            if privacy is None:
                compiled = _compile(plan_bytes)
                response = node_pb2.AggregateResponse(
                    city=snapshot.stem, groups=exact_groups(_run_on_cursor(connection, compiled),
                                                            compiled))
            else:
                private = _compile_private(plan_bytes, privacy)
                epsilon, delta = charge_of(private, privacy.epsilon_per_question,
                                           privacy.delta_per_question)
                released = release(_run_on_cursor(connection, private), private,
                                   epsilon=epsilon, delta=delta)
                response = node_pb2.AggregateResponse(city=snapshot.stem,
                                                      groups=released.groups,
                                                      privacy=released.report)
            total += response.ByteSize()
        finally:
            connection.close()
    return total
