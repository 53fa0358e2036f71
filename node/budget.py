"""Each caller's privacy budget at this node: ε and δ per caller × purpose × period.

A private answer is charged here before it is computed, in one SQLite transaction that checks
and spends together, so concurrent questions cannot overspend and a charge, once made, is
never given back: not when the query fails, not when the node is killed before answering.
WAL mode: a committed charge survives `kill -9`; `sync=True` also survives power loss.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from cityfed.v1 import node_pb2

from federation.errors import BudgetExhausted, StateUnavailable
from node.policy import PrivacySettings
from node.replay import open_sqlite, write_failure

log = logging.getLogger(__name__)

_EPSILON_SLACK = 1e-9  # float sums of ε: 10 × 0.1 must fit a budget of 1.0


@dataclass(frozen=True)
class BudgetLimits:
    epsilon: float
    delta: float
    period: str  # day, week or month (UTC)


@dataclass(frozen=True)
class BudgetState:
    """A caller's budget for one purpose in the current period."""

    caller: str
    purpose: str
    period: str  # the period's key, e.g. "2026-12-01", "2026-W49" or "2026-12"
    resets_at: dt.datetime
    epsilon_limit: float
    epsilon_spent: float
    delta_limit: float
    delta_spent: float

    @property
    def resets_at_text(self) -> str:
        """RFC 3339 in UTC, as the protos and messages give it."""
        return self.resets_at.isoformat().replace("+00:00", "Z")


def period_of(kind: str, now: dt.datetime) -> tuple[str, dt.datetime]:
    """The key of the period holding `now` (UTC) and when the next one starts."""
    day = now.astimezone(dt.UTC).date()
    if kind == "day":
        start_next = day + dt.timedelta(days=1)
        key = day.isoformat()
    elif kind == "week":
        year, week, weekday = day.isocalendar()
        start_next = day + dt.timedelta(days=8 - weekday)
        key = f"{year}-W{week:02d}"
    elif kind == "month":
        start_next = (day.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
        key = f"{day.year}-{day.month:02d}"
    else:
        raise ValueError(f"unknown budget period {kind!r}")
    return key, dt.datetime.combine(start_next, dt.time(), tzinfo=dt.UTC)


class PrivacyBudget:
    def __init__(self, path: Path, *, sync: bool = False, clock=None) -> None:
        self.path = path
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._connection = open_sqlite(
                path, f"PRAGMA synchronous={'FULL' if sync else 'NORMAL'}",
                "CREATE TABLE IF NOT EXISTS spent (caller TEXT NOT NULL, purpose TEXT NOT NULL, "
                "period TEXT NOT NULL, epsilon REAL NOT NULL, delta REAL NOT NULL, "
                "questions INTEGER NOT NULL, PRIMARY KEY (caller, purpose, period))")
        except (OSError, sqlite3.Error) as error:
            raise StateUnavailable(f"cannot open the privacy budget {path}: "
                                   f"{write_failure(error)}") from None

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    def state(self, caller: str, purpose: str, limits: BudgetLimits) -> BudgetState:
        key, resets_at = period_of(limits.period, self._clock())
        with self._lock:
            row = self._connection.execute(
                "SELECT epsilon, delta FROM spent WHERE caller = ? AND purpose = ? AND period = ?",
                (caller, purpose, key)).fetchone()
        epsilon, delta = row or (0.0, 0.0)
        return BudgetState(caller, purpose, key, resets_at, limits.epsilon, epsilon,
                           limits.delta, delta)

    def charge(self, caller: str, purpose: str, epsilon: float, delta: float,
               limits: BudgetLimits) -> BudgetState:
        """Spend (ε, δ) from the caller's budget for this purpose and period, or raise
        BudgetExhausted and spend nothing. Returns the budget after the charge."""
        key, resets_at = period_of(limits.period, self._clock())
        with self._lock:
            connection = self._connection
            try:
                connection.execute("BEGIN IMMEDIATE")
                row = connection.execute(
                    "SELECT epsilon, delta FROM spent WHERE caller = ? AND purpose = ? "
                    "AND period = ?", (caller, purpose, key)).fetchone()
                spent_epsilon, spent_delta = row or (0.0, 0.0)
                after = BudgetState(caller, purpose, key, resets_at, limits.epsilon,
                                    spent_epsilon + epsilon, limits.delta, spent_delta + delta)
                if after.epsilon_spent > limits.epsilon + _EPSILON_SLACK:
                    spent = f"ε {spent_epsilon:g} of {limits.epsilon:g} used, this question " \
                            f"needs {epsilon:g}"
                elif after.delta_spent > limits.delta * (1 + _EPSILON_SLACK):
                    spent = f"δ {spent_delta:g} of {limits.delta:g} used, this question " \
                            f"needs {delta:g}"
                else:
                    spent = ""
                if spent:
                    raise BudgetExhausted(
                        f"the privacy budget of {caller} for purpose {purpose[:64]!r} is spent "
                        f"for {key}: {spent}; it resets at {after.resets_at_text}",
                        subject=f"{caller}/{purpose[:64]}/{key}")
                connection.execute(
                    "INSERT INTO spent VALUES (?, ?, ?, ?, ?, 1) "
                    "ON CONFLICT (caller, purpose, period) DO UPDATE SET "
                    "epsilon = epsilon + excluded.epsilon, delta = delta + excluded.delta, "
                    "questions = questions + 1", (caller, purpose, key, epsilon, delta))
                connection.execute("COMMIT")
            except sqlite3.Error as error:
                self._roll_back()
                log.error("%s: cannot charge a privacy budget: %s", self.path,
                          write_failure(error))
                raise StateUnavailable("this node cannot charge the privacy budget (its disk "
                                       "may be full); nothing was answered, try again later"
                                       ) from None
            except BaseException:
                self._roll_back()
                raise
        return after

    def _roll_back(self) -> None:
        # SQLite rolls a transaction back itself when a disk is full; ROLLBACK would then fail.
        if self._connection.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._connection.execute("ROLLBACK")


def budget_limits(settings: PrivacySettings) -> BudgetLimits:
    return BudgetLimits(settings.epsilon_per_period, settings.delta_per_period, settings.period)


def budget_message(state: BudgetState, settings: PrivacySettings) -> node_pb2.PrivacyBudget:
    return node_pb2.PrivacyBudget(
        purpose=state.purpose, period=state.period,
        resets_at=state.resets_at_text,
        epsilon_limit=state.epsilon_limit, epsilon_spent=state.epsilon_spent,
        delta_limit=state.delta_limit, delta_spent=state.delta_spent,
        epsilon_per_question=settings.epsilon_per_question,
        delta_per_question=settings.delta_per_question)
