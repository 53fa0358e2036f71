"""A node's Prometheus metrics: the calls every server counts (federation.serving.metrics), and the
node's own: the privacy budget left per caller and purpose, the audit log's size and the age of
its last checkpoint, and the rows loaded (docs/metrics.md). The budget and the audit log are
read when Prometheus scrapes, so they are never stale."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from federation.serving.metrics import ServerMetrics
from node.audit import AuditLog
from node.budget import BudgetLimits, PrivacyBudget


class NodeMetrics(ServerMetrics):
    def __init__(self, audit: AuditLog, budget: PrivacyBudget,
                 limits: Callable[[], BudgetLimits]) -> None:
        super().__init__()
        self.rows_loaded = Counter(
            "cityfed_ingest_rows_loaded", "Rows added by loads through the admin socket, by "
            "dataset.", ("dataset",), registry=self.registry)
        self._state = _NodeState(audit, budget, limits)
        self.registry.register(self._state)

    def observe(self, method: str, facts: dict, error, started: float) -> None:
        super().observe(method, facts, error, started)
        if error is None and facts.get("dataset") and facts.get("rows_loaded"):
            self.rows_loaded.labels(facts["dataset"]).inc(facts["rows_loaded"])
        # A charge is never given back, so a call that failed after it still spent the budget.
        if facts.get("epsilon") and facts.get("caller") and facts.get("purpose"):
            self._state.charged(facts["caller"], facts["purpose"])


class _NodeState(Collector):
    def __init__(self, audit: AuditLog, budget: PrivacyBudget,
                 limits: Callable[[], BudgetLimits]) -> None:
        self._audit = audit
        self._budget = budget
        self._limits = limits
        self._lock = threading.Lock()
        self._pairs: set[tuple[str, str]] = set()  # (caller, purpose) charged since the start

    def charged(self, caller: str, purpose: str) -> None:
        with self._lock:
            self._pairs.add((caller, purpose))

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from self._budget_left()
        yield from self._audit_log()

    def _budget_left(self) -> Iterator[GaugeMetricFamily]:
        epsilon = GaugeMetricFamily(
            "cityfed_privacy_budget_epsilon_remaining", "Privacy budget ε left in the current "
            "period, per caller and purpose charged since the node started.",
            labels=("caller", "purpose"))
        delta = GaugeMetricFamily(
            "cityfed_privacy_budget_delta_remaining", "Privacy budget δ left in the current "
            "period, per caller and purpose charged since the node started.",
            labels=("caller", "purpose"))
        limits = self._limits()
        with self._lock:
            pairs = sorted(self._pairs)
        for caller, purpose in pairs:
            state = self._budget.state(caller, purpose, limits)
            epsilon.add_metric((caller, purpose), max(0.0, state.epsilon_limit -
                                                      state.epsilon_spent))
            delta.add_metric((caller, purpose), max(0.0, state.delta_limit - state.delta_spent))
        yield epsilon
        yield delta

    def _audit_log(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily("cityfed_audit_records", "Records in the audit log.",
                                value=self._audit.size)
        yield GaugeMetricFamily("cityfed_audit_log_bytes", "Bytes the audit log's files take.",
                                value=_folder_bytes(self._audit.directory))
        checkpoint = self._audit.last_checkpoint
        if checkpoint is not None:
            age = (datetime.now(UTC) - checkpoint.moment).total_seconds()
            yield GaugeMetricFamily("cityfed_audit_last_checkpoint_age_seconds",
                                    "Seconds since the last signed checkpoint.", value=age)
            yield GaugeMetricFamily("cityfed_audit_last_checkpoint_size",
                                    "Records the last signed checkpoint covers.",
                                    value=checkpoint.size)


def _folder_bytes(folder: Path) -> int:
    total = 0
    for path in folder.rglob("*"):
        try:
            if path.is_file():
                total += path.stat().st_size
        except OSError:  # a file rotated away meanwhile
            continue
    return total
