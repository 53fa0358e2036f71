"""One city's DuckDB store (the default): the standard tables in one embedded DuckDB file,
sandboxed queries under deadlines, atomic loads."""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import duckdb
import pyarrow as pa

from federation.errors import (
    Cancelled,
    CityfedError,
    DeadlineExceeded,
    InvalidQuery,
    LoadInProgress,
    StoreUnavailable,
    TooLarge,
)
from federation.query.compile import DUCKDB, quote_identifier
from federation.query.datasets import DATASETS, create_table_sql
from federation.query.runtime_errors import runtime_failure
from federation.query.sandbox import sandboxed_connection
from federation.query.values import decode_temporal
from node.compile import CompiledKeys, CompiledPlan, PrivatePlan
from node.deadlines import WATCHDOG
from node.ingest import IngestMode, IngestResult, Load, add_rank_column, load_into
from node.stores.base import OnCancel, WorkUnderWay

log = logging.getLogger(__name__)
T = TypeVar("T")

class DuckDBStore(WorkUnderWay):
    def __init__(self, database: Path, *, memory_limit: str = "2GB", threads: int = 2,
                 max_result_groups: int = 100_000) -> None:
        database.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._connection = sandboxed_connection(database, memory_limit=memory_limit,
                                                    threads=threads)
        except duckdb.IOException as error:
            raise StoreUnavailable(f"cannot open {database}: {error}") from None
        self._max_result_groups = max_result_groups
        self._load_locks = {name: threading.Lock() for name in DATASETS}
        # The queries and loads under way, each with what stops it (see stop_all).
        super().__init__()
        try:
            for dataset in DATASETS.values():
                self._connection.execute(create_table_sql(dataset))
                add_rank_column(self._connection, dataset)
        except duckdb.Error as error:
            self._connection.close()
            if not is_write_failure(error):
                raise
            raise StoreUnavailable(f"cannot write {database}: {write_failure_text(error)}"
                                   ) from None

    engine = "duckdb"
    dialect = DUCKDB

    def close(self) -> None:
        self._connection.close()

    def row_counts(self) -> dict[str, int]:
        cursor = self._connection.cursor()
        try:
            return {
                name: cursor.execute(f"SELECT count(*) FROM {quote_identifier(name)}").fetchone()[0]
                for name in DATASETS
            }
        finally:
            cursor.close()

    def aggregate(self, compiled: CompiledPlan | PrivatePlan, *, timeout: float,
                  on_cancel: OnCancel | None = None) -> list[tuple]:
        """Run a compiled plan on its own cursor, interrupted when `timeout` seconds pass or the
        caller cancels. An exact plan returns at most max_result_groups rows. A private plan's
        rows are candidates that the noisy threshold has yet to thin out: refusing on their
        exact number would tell whether one person's group exists, so they are not limited here
        (memory and the deadline still are) and the limit applies to the groups released."""
        def run(cursor: duckdb.DuckDBPyConnection) -> list[tuple]:
            cursor.execute(compiled.runnable_sql, compiled.params)
            if isinstance(compiled, PrivatePlan):
                return cursor.fetchall()
            return cursor.fetchmany(self._max_result_groups + 1)

        rows = self._run(run, _clauses(compiled), timeout=timeout, on_cancel=on_cancel)
        if not isinstance(compiled, PrivatePlan):
            self.check_result_size(len(rows))
        return decode_temporal(rows, compiled.temporal)

    def linkage_keys(self, compiled: CompiledKeys, *, timeout: float,
                     on_cancel: OnCancel | None = None) -> pa.StringArray:
        """A linkage side's distinct key values, as one Arrow array (compact: about the
        values' bytes, where Python strings would take four times as much)."""
        def run(cursor: duckdb.DuckDBPyConnection) -> pa.Table:
            return cursor.sql(compiled.sql, params=compiled.params).to_arrow_table()

        table = self._run(run, (), timeout=timeout, on_cancel=on_cancel)
        return table.column(0).combine_chunks().cast(pa.string())

    def _run(self, run: Callable[[duckdb.DuckDBPyConnection], T],
             clauses: list[tuple[str, str]] | tuple, *, timeout: float,
             on_cancel: OnCancel | None) -> T:
        """`run(cursor)` on a cursor of its own, interrupted at the deadline or on cancel."""
        if timeout <= 0:
            raise DeadlineExceeded("the deadline passed before the query started")
        cursor = self._connection.cursor()
        why_stopped: list[CityfedError] = []
        running = threading.Lock()
        finished = False

        def stop(error: CityfedError) -> None:
            # gRPC also runs cancel callbacks when a call ends normally: only interrupt a query
            # that is still running, on a cursor that is still open.
            with running:
                if not finished:
                    why_stopped.append(error)
                    cursor.interrupt()

        def cancelled() -> None:
            stop(Cancelled("the query was stopped: the caller cancelled"))

        timer = WATCHDOG.call_after(timeout, lambda: stop(
            DeadlineExceeded("the query was stopped: the deadline passed")))
        if on_cancel is not None and not on_cancel(cancelled):
            cancelled()
        try:
            with self._stoppable("the query was stopped", stop):
                return run(cursor)
        except duckdb.InterruptException:
            raise (why_stopped[0] if why_stopped else
                   Cancelled("the query was stopped: the caller cancelled")) from None
        except duckdb.OutOfMemoryException:
            raise TooLarge("the query needs more memory than this node allows") from None
        except duckdb.Error as error:
            if is_write_failure(error):  # a spill to a full disk
                raise store_unavailable(error) from None
            # DuckDB's text quotes the values it failed on: only its class is logged.
            log.info("a query failed at run time: %s", type(error).__name__)
            raise runtime_failure(error, clauses) from None
        finally:
            timer.cancel()
            with running:
                finished = True
            cursor.close()

    def snapshot(self, target: Path, *, timeout: float) -> dict[str, int]:
        """Copy the database as it stands to `target`, a new file, and return its row counts.
        DuckDB's checkpoint first moves its write-ahead log into the file; loads are held off
        until the copy is made (one under way is waited for, up to `timeout` seconds, and one
        asked for meanwhile is refused as if another load were under way); queries go on."""
        held: list[threading.Lock] = []
        deadline = time.monotonic() + timeout
        try:
            for name, lock in sorted(self._load_locks.items()):
                if not lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
                    raise LoadInProgress(f"a load into {name} is still under way; back up "
                                         "when it is done")
                held.append(lock)
            cursor = self._connection.cursor()
            try:
                cursor.execute("CHECKPOINT")
                (path,) = cursor.execute("SELECT path FROM duckdb_databases() WHERE "
                                         "database_name = current_database()").fetchone()
                counts = {name: cursor.execute(
                    f"SELECT count(*) FROM {quote_identifier(name)}").fetchone()[0]
                    for name in DATASETS}
            finally:
                cursor.close()
            for suffix in ("", ".wal"):  # no write-ahead log is left after a checkpoint
                if os.path.exists(path + suffix):
                    shutil.copyfile(path + suffix, f"{target}{suffix}")
                    with open(f"{target}{suffix}", "rb+") as copy:
                        os.fsync(copy.fileno())
        finally:
            for lock in held:
                lock.release()
        return counts

    def check_result_size(self, groups: int) -> None:
        if groups > self._max_result_groups:
            raise TooLarge(f"the result has more than {self._max_result_groups} groups")

    def ingest(self, dataset: str, path: Path, mode: IngestMode,
               load: Load | None = None) -> IngestResult:
        """Load a file into a dataset in one transaction; `load` follows it and can stop it."""
        load = load or Load()
        lock = self._load_locks.get(dataset)
        if lock is None:
            raise InvalidQuery(f"unknown dataset {dataset[:64]!r}; known: {', '.join(DATASETS)}")
        if not lock.acquire(blocking=False):
            raise LoadInProgress(f"another load into {dataset} is under way")
        log.info("loading into %s (%s)", dataset, mode.value)
        started = time.perf_counter()
        cursor = self._connection.cursor()
        try:
            with self._stoppable("the load was rolled back, nothing was loaded", load.stop):
                result = load_into(cursor, DATASETS[dataset], path, mode, load)
        except duckdb.Error as error:
            if not is_write_failure(error):
                raise
            raise store_unavailable(error) from None
        finally:
            cursor.close()
            lock.release()
        log.info("loaded %d rows into %s (%s) in %.2fs", result.rows_loaded, dataset,
                 mode.value, time.perf_counter() - started)
        return result


def is_write_failure(error: duckdb.Error) -> bool:
    """Whether DuckDB could not write its files (a full disk, an I/O error), rather than
    failing on the question or the data."""
    return isinstance(error, duckdb.IOException) or (
        isinstance(error, duckdb.TransactionException) and "Failed to commit" in str(error))


def write_failure_text(error: duckdb.Error) -> str:
    """DuckDB's words for a write failure: the file and the operating system's error, which
    carry no value of a row."""
    return str(error).split("\n", 1)[0].removeprefix("TransactionContext Error: ")[:300]


def store_unavailable(error: duckdb.Error) -> StoreUnavailable:
    log.error("the database cannot be written: %s", write_failure_text(error))
    return StoreUnavailable("this node cannot write its database (its disk may be full); "
                            "nothing was changed, try again later")


def _clauses(compiled: CompiledPlan) -> list[tuple[str, str]]:
    """The compiled query's parts, named as the caller knows them (WHERE, GROUP BY key n,
    aggregate n), to say where a run-time error can have come from. The SQL text is the
    node's own (schema identifiers, operators and `?`), so it splits at its keywords and at
    commas outside parentheses."""
    select, _, rest = compiled.sql.removeprefix("SELECT ").partition(" FROM ")
    where = rest.partition(" WHERE ")[2].partition(" GROUP BY ")[0]
    items, depth, start = [], 0, 0
    for position, character in enumerate(select):
        depth += {"(": 1, ")": -1}.get(character, 0)
        if character == "," and depth == 0:
            items.append(select[start:position])
            start = position + 1
    items.append(select[start:])
    clauses = [("WHERE", where)] if where else []
    keys, computed = items[:compiled.key_count], items[compiled.key_count:]
    clauses += [(f"GROUP BY key {n}", key) for n, key in enumerate(keys, start=1)]
    widths = [len(parts) for parts in compiled.parts]
    extra = len(computed) - sum(widths)  # a private answer's row count comes first
    if extra not in (0, 1):
        return [*clauses, ("an aggregate", " ".join(computed))]
    computed = computed[extra:]
    for number, width in enumerate(widths, start=1):
        clauses.append((f"aggregate {number}", " ".join(computed[:width])))
        computed = computed[width:]
    return clauses
