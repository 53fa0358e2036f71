"""A node over the city's own Spark (`store = "spark"`): the same compiled plans, in Spark SQL
(node.stores.spark_dialect), read from the Parquet files or catalog tables the config names.

The node reads and never writes: loads and the data's backups are the city's own pipeline's.
Its Spark session can reach only the configured datasets: each is a temporary view the node
registers at start (and a second one with the hidden per-person rank for private answers), the
SQL it runs is its own and names only those views, and SQL on files is turned off. Exact
answers run with ANSI mode on, so that an overflow or a division by zero is an error (given the
caller as a fixed message, never Spark's text, which quotes values); private answers run on a
second session without it (see spark_dialect). Every query carries a job tag; a deadline, a
cancelled call or stop_all interrupts the tag's jobs.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa

from federation.errors import (
    Cancelled,
    CityfedError,
    ConfigError,
    DeadlineExceeded,
    InvalidQuery,
    ReadOnlyStore,
    StoreUnavailable,
    TooLarge,
)
from federation.query.datasets import DATASETS
from federation.query.runtime_errors import GENERIC, PREFIX
from federation.query.values import decode_temporal
from node.compile import CompiledKeys, CompiledPlan, PrivatePlan
from node.config import NodeConfig
from node.deadlines import WATCHDOG
from node.ingest import IngestMode, IngestResult, Load
from node.stores.base import OnCancel, WorkUnderWay
from node.stores.spark_dialect import RANKED_SUFFIX, SparkDialect, ranked_view_sql, spark_quote

log = logging.getLogger(__name__)

DIALECT = SparkDialect()
TABLE_PREFIX = "table:"
SEED_FILE = "spark_rank_seed"
READ_ONLY = ("this node reads the city's Spark tables and never writes them; load them with the "
             "city's own pipeline")

# Settings of every session the node opens: errors are errors, time is UTC, timestamps are
# DuckDB's (without time zone), SQL cannot name files.
SESSION_SETTINGS = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.timestampType": "TIMESTAMP_NTZ",
    "spark.sql.parquet.inferTimestampNTZ.enabled": "true",
    "spark.sql.runSQLOnFiles": "false",
}
LOCAL_SETTINGS = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "4",
    "spark.sql.ansi.enabled": "true",
    **SESSION_SETTINGS,
}

# Spark's error classes for run-time faults, as fixed phrases (its text quotes the operands).
_RUNTIME_PHRASES = {
    "ARITHMETIC_OVERFLOW": "integer overflow in an arithmetic operation",
    "BINARY_ARITHMETIC_OVERFLOW": "integer overflow in an arithmetic operation",
    "DECIMAL_PRECISION_EXCEEDS_MAX_PRECISION": "decimal overflow in an arithmetic operation",
    "NUMERIC_VALUE_OUT_OF_RANGE": "a value went out of range",
    "DIVIDE_BY_ZERO": "division by zero in an integer division (//) or a modulo (%)",
    "INTERVAL_DIVIDED_BY_ZERO": "division by zero",
    "DATETIME_OVERFLOW": "a date or timestamp went out of range",
    "CAST_OVERFLOW": "a value went out of range",
    "CAST_INVALID_INPUT": "a value could not be converted to the type an operation needs",
}


def spark_runtime_failure(error: BaseException) -> InvalidQuery:
    """The caller's error for a Spark error raised while running a query: a fixed message."""
    condition = _error_class(error)
    for known, phrase in _RUNTIME_PHRASES.items():
        if condition.startswith(known):
            return InvalidQuery(PREFIX + phrase)
    return InvalidQuery(GENERIC)


def _error_class(error: BaseException) -> str:
    getter = getattr(error, "getCondition", None) or getattr(error, "getErrorClass", None)
    try:
        return (getter() or "") if getter else ""
    except Exception:  # a Java error without a class
        return ""


def _spark_session(config: NodeConfig, *, ansi: bool):
    from pyspark.sql import SparkSession

    if config.spark_remote:
        session = SparkSession.builder.remote(config.spark_remote).create()
        for key, value in {**SESSION_SETTINGS,
                           "spark.sql.ansi.enabled": str(ansi).lower()}.items():
            session.conf.set(key, value)
        return session
    builder = SparkSession.builder.master(config.spark_master).appName(f"cityfed-{config.city}")
    for key, value in LOCAL_SETTINGS.items():
        builder = builder.config(key, value)
    # A session of its own on the process's Spark: its temporary views are the node's alone,
    # also beside another node in the same process (the tests run several).
    session = builder.getOrCreate().newSession()
    for key, value in {**SESSION_SETTINGS, "spark.sql.ansi.enabled": str(ansi).lower()}.items():
        session.conf.set(key, value)
    return session


# The stores open on the process's local Spark: stopping a session of it stops the whole
# Spark, so the last store to close stops it, and a store closing beside others leaves it.
_local_lock = threading.Lock()
_local_stores = 0


def _hold_local() -> None:
    global _local_stores
    with _local_lock:
        _local_stores += 1


def _release_local(session) -> None:
    global _local_stores
    with _local_lock:
        _local_stores -= 1
        if _local_stores <= 0:
            _local_stores = 0
            with contextlib.suppress(Exception):
                session.stop()


def rank_seed(state_dir: Path) -> int:
    """The node's secret seed for the order of each person's rows (kept in its state folder,
    so that the order is the same after a restart)."""
    path = state_dir / SEED_FILE
    try:
        return int(path.read_text())
    except FileNotFoundError:
        state_dir.mkdir(parents=True, exist_ok=True)
        seed = secrets.randbits(62)
        path.write_text(f"{seed}\n")
        path.chmod(0o600)
        return seed


class SparkStore(WorkUnderWay):
    """The city's datasets in its Spark, read through the node's own views."""

    engine = "spark"

    def __init__(self, exact, private, locations: dict[str, str], *, seed: int,
                 max_result_groups: int = 100_000, max_query_seconds: float = 60.0,
                 count_cache_seconds: float = 60.0, owns_sessions: bool = True) -> None:
        self._exact = exact
        self._private = private
        self._locations = dict(locations)
        self._max_result_groups = max_result_groups
        self._max_query_seconds = max_query_seconds
        self._owns_sessions = owns_sessions
        self._count_cache_seconds = count_cache_seconds
        self._counting = threading.Lock()
        self._counts: dict[str, int] | None = None
        self._counted_at = 0.0
        super().__init__()
        for session in (exact, private):
            for name, location in self._locations.items():
                _source(session, location).createOrReplaceTempView(name)
                session.sql(ranked_view_sql(name, seed)).createOrReplaceTempView(
                    name + RANKED_SUFFIX)

    @classmethod
    def open(cls, config: NodeConfig) -> SparkStore:
        try:
            import pyspark  # noqa: F401
        except ImportError:
            raise ConfigError("store = \"spark\" needs pyspark: pip install 'cityfed[spark]' "
                              "(and Java 17 for spark_master)") from None
        logging.getLogger("SQLQueryContextLogger").setLevel(logging.CRITICAL)  # quotes values
        try:
            exact = _spark_session(config, ansi=True)
            private = _spark_session(config, ansi=False)
            if not config.spark_remote:
                _hold_local()
            return cls(exact, private, config.spark_datasets, seed=rank_seed(config.state_path),
                       max_result_groups=config.max_result_groups,
                       max_query_seconds=config.max_query_seconds,
                       count_cache_seconds=config.spark_count_cache_seconds)
        except CityfedError:
            raise
        except Exception as error:
            log.error("cannot open the Spark store: %s", type(error).__name__)
            raise StoreUnavailable(f"cannot reach the city's Spark or a dataset it names "
                                   f"({type(error).__name__})") from None

    @property
    def dialect(self) -> SparkDialect:
        return DIALECT

    def close(self) -> None:
        if not self._owns_sessions:
            return
        if _is_connect(self._exact):
            for session in (self._private, self._exact):
                with contextlib.suppress(Exception):
                    session.stop()
        else:
            _release_local(self._exact)

    def row_counts(self) -> dict[str, int]:
        """The datasets' row counts, counted at most once every `count_cache_seconds`: a count
        is a Spark job over every file, and the data is the city's pipeline's, which changes
        it rarely."""
        with self._counting:
            now = time.monotonic()
            if self._counts is None or now - self._counted_at >= self._count_cache_seconds:
                self._counts = self._count_rows()
                self._counted_at = time.monotonic()
            return dict(self._counts)

    def _count_rows(self) -> dict[str, int]:
        counts = dict.fromkeys(DATASETS, 0)
        if not self._locations:
            return counts
        # One job for all the datasets: one round trip to a cluster, not one per dataset.
        sql = " UNION ALL ".join(f"SELECT '{name}', count(*) FROM {spark_quote(name)}"
                                 for name in self._locations)
        rows = self._run(self._exact, sql, [], timeout=self._max_query_seconds, on_cancel=None)
        counts.update({name: count for name, count in rows})
        return counts

    def _check_present(self, dataset: str) -> None:
        if dataset not in self._locations:
            raise InvalidQuery(f"this city holds no {dataset} dataset")

    def aggregate(self, compiled: CompiledPlan | PrivatePlan, *, timeout: float,
                  on_cancel: OnCancel | None = None) -> list[tuple]:
        self._check_present(compiled.dataset.name)
        private = isinstance(compiled, PrivatePlan)
        limit = None if private else self._max_result_groups + 1
        rows = self._run(self._private if private else self._exact, compiled.runnable_sql,
                         compiled.params, timeout=timeout, on_cancel=on_cancel, limit=limit)
        if not private:
            self.check_result_size(len(rows))
            if compiled.integral:
                rows = [_as_ints(row, compiled.integral) for row in rows]
        return decode_temporal(rows, compiled.temporal)

    def check_result_size(self, groups: int) -> None:
        if groups > self._max_result_groups:
            raise TooLarge(f"the result has more than {self._max_result_groups} groups")

    def linkage_keys(self, compiled: CompiledKeys, *, timeout: float,
                     on_cancel: OnCancel | None = None) -> pa.StringArray:
        rows = self._run(self._private, compiled.sql, compiled.params, timeout=timeout,
                         on_cancel=on_cancel)
        return pa.array([row[0] for row in rows], type=pa.string())

    def _run(self, session, sql: str, params: list, *, timeout: float,
             on_cancel: OnCancel | None, limit: int | None = None) -> list[tuple]:
        """Run `sql` under a job tag of its own, interrupted at the deadline or on cancel."""
        if timeout <= 0:
            raise DeadlineExceeded("the deadline passed before the query started")
        tag = f"cityfed-{uuid.uuid4().hex}"
        why_stopped: list[CityfedError] = []
        running = threading.Lock()
        finished = False

        def stop(error: CityfedError) -> None:
            with running:
                if not finished:
                    why_stopped.append(error)
                    with contextlib.suppress(Exception):
                        _interrupt(session, tag)

        def cancelled() -> None:
            stop(Cancelled("the query was stopped: the caller cancelled"))

        timer = WATCHDOG.call_after(timeout, lambda: stop(
            DeadlineExceeded("the query was stopped: the deadline passed")))
        if on_cancel is not None and not on_cancel(cancelled):
            cancelled()
        _tag(session, tag, on=True)
        try:
            with self._stoppable("the query was stopped", stop):
                frame = session.sql(sql, args=[_parameter(p) for p in params])
                if limit is not None:
                    frame = frame.limit(limit)
                return [tuple(row) for row in frame.collect()]
        except CityfedError:
            raise
        except Exception as error:
            if why_stopped:
                raise why_stopped[0] from None
            log.info("a Spark query failed: %s %s", type(error).__name__, _error_class(error))
            if _error_class(error).startswith(("TABLE_OR_VIEW_NOT_FOUND", "PATH_NOT_FOUND")):
                raise StoreUnavailable("a dataset's table or files cannot be read from the "
                                       "city's Spark") from None
            raise spark_runtime_failure(error) from None
        finally:
            timer.cancel()
            with running:
                finished = True
            with contextlib.suppress(Exception):
                _tag(session, tag, on=False)

    def ingest(self, dataset: str, path: Path, mode: IngestMode,
               load: Load | None = None) -> IngestResult:
        raise ReadOnlyStore(READ_ONLY)

    def snapshot(self, target: Path, *, timeout: float) -> dict[str, int]:
        """Nothing to copy: the data is the city's own, backed up with its tools. A node's
        backup holds its state and audit log, and these counts of what the engine held."""
        return self._count_rows()


def _is_connect(session) -> bool:
    return type(session).__module__.startswith("pyspark.sql.connect")


def _tag(session, tag: str, *, on: bool) -> None:
    """Tag (or untag) the jobs this thread starts. A local Spark tags them on its context:
    the session's own tags reach only Spark Connect's operations."""
    if _is_connect(session):
        (session.addTag if on else session.removeTag)(tag)
    else:
        context = session.sparkContext
        (context.addJobTag if on else context.removeJobTag)(tag)


def _interrupt(session, tag: str) -> None:
    if _is_connect(session):
        session.interruptTag(tag)
    else:
        session.sparkContext.cancelJobsWithTag(tag)


def _source(session, location: str):
    if location.startswith(TABLE_PREFIX):
        return session.table(location.removeprefix(TABLE_PREFIX))
    return session.read.parquet(location)


def _parameter(value: Any) -> Any:
    """A value to bind: Spark reads dates, timestamps and 128-bit integers from their text
    (the plan casts each). A local Spark's bridge would pass a `datetime.date` through
    `strftime`, which writes the year 1 as `1-01-01`, which Java cannot read."""
    if isinstance(value, int | float | Decimal | str | bool) or value is None:
        return value
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _as_ints(row: tuple, positions: tuple[int, ...]) -> tuple:
    values = list(row)
    for i in positions:
        if values[i] is not None:
            values[i] = int(values[i])
    return tuple(values)
