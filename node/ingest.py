"""Load a CSV or Parquet file into a standard dataset: validated, then all or nothing.

The file is read by pyarrow in this process (the sandboxed DuckDB may not open files); DuckDB
then checks every value against the schema in one vectorised pass and inserts the rows inside
one transaction, so a reader sees the old rows until the new ones are complete and a bad file
changes nothing. A `Load` follows it as it runs: its progress, for a display, and a way to stop
it that rolls it back unless it has begun to commit.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import enum
import re
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pa_parquet

from federation.errors import CityfedError, FileMissing, IngestError
from federation.query.compile import quote_identifier
from federation.query.datasets import PERSON_ROW_RANK, Column, Dataset

ROW_NUMBER = "__cityfed_row"
STAGING = "__cityfed_staging"
SORTED = "__cityfed_sorted"
RANKED = "__cityfed_rank"
# Rows checked, then written, per statement: the progress a display shows between them.
CHUNK_ROWS = 500_000
# A header name that is not a column is repeated in an error only when it looks like one: a
# file without a header has a resident's values in its first line.
_COLUMN_LIKE = re.compile(r"[a-z_][a-z0-9_]{0,63}")


class IngestMode(enum.Enum):
    REPLACE = "replace"
    APPEND = "append"


@dataclass(frozen=True)
class IngestResult:
    rows_loaded: int
    row_count: int


class Phase(enum.Enum):
    """The steps of a load, in order."""

    READING = "reading the file"
    CHECKING = "checking every value"
    WRITING = "writing the rows"
    ORDERING = "ordering each person's rows"
    COMMITTING = "committing"


@dataclass(frozen=True)
class Progress:
    """How far a load has come: its phase and the rows that phase has done, of the file's rows
    (unknown while a CSV file is read: the bytes read say how far that is)."""

    phase: Phase = Phase.READING
    rows_done: int = 0
    rows_total: int | None = None
    bytes_done: int = 0
    bytes_total: int = 0


class Load:
    """One load as it runs: its progress, which other threads read, and a way to stop it.

    Stopped before it commits, the load rolls back and raises the error it was stopped with;
    once it has begun to commit, it commits and `stop` says so. The load checks for a stop
    between its steps, and a stop interrupts the DuckDB statement under way."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._progress = Progress()
        self._cursor: duckdb.DuckDBPyConnection | None = None
        self._stopped: CityfedError | None = None
        self._committing = False

    @property
    def progress(self) -> Progress:
        return self._progress

    def report(self, **changes) -> None:
        """Move the progress on; raises the stopping error if the load was stopped."""
        self._progress = dataclasses.replace(self._progress, **changes)
        self.check()

    def check(self) -> None:
        if self._stopped is not None:
            raise self._stopped

    def stop(self, error: CityfedError) -> bool:
        """Stop the load with `error`: True if it rolls back, False if it is committing."""
        with self._lock:
            if self._committing:
                return False
            if self._stopped is None:
                self._stopped = error
                if self._cursor is not None:
                    self._cursor.interrupt()
            return True

    def attach(self, cursor: duckdb.DuckDBPyConnection | None) -> None:
        with self._lock:
            self._cursor = cursor

    def commit(self, cursor: duckdb.DuckDBPyConnection) -> None:
        with self._lock:
            self.check()
            self._committing = True
        self.report(phase=Phase.COMMITTING)
        cursor.execute("COMMIT")


def read_file(path: Path, dataset: Dataset, load: Load | None = None) -> pa.Table:
    """Read a file into Arrow, CSV columns as text; the columns must be exactly the dataset's."""
    load = load or Load()
    if not path.is_file():
        raise FileMissing(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return _read_csv(path, dataset, load)
        if suffix == ".parquet":
            return _read_parquet(path, dataset, load)
        raise IngestError(f"{path}: expected a .csv or .parquet file")
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError, csv.Error) as error:
        raise IngestError(f"{path}: cannot be read: {str(error).splitlines()[0][:300]}") from None


def _check_columns(path: Path, dataset: Dataset, names: list[str]) -> None:
    missing = [c for c in dataset.column_names if c not in names]
    extra = [c for c in names if c not in dataset.column_names]
    if missing or extra or len(set(names)) != len(names):
        shown = [name for name in extra if _COLUMN_LIKE.fullmatch(name)][:10]
        others = len(extra) - len(shown)
        unexpected = ", ".join([*shown, *([f"{others} other names"] if others else [])])
        raise IngestError(
            f"{path}: columns must be exactly those of {dataset.name} "
            f"({', '.join(dataset.column_names)}); missing: {', '.join(missing) or 'none'}; "
            f"unexpected: {unexpected or 'none'}"
        )


def _read_csv(path: Path, dataset: Dataset, load: Load) -> pa.Table:
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
        header = next(csv.reader(handle), None)
    if header is None:
        raise IngestError(f"{path}: the file is empty; the first line must name the columns")
    _check_columns(path, dataset, header)
    wrong_width: list[tuple[int | None, int, int]] = []

    def invalid_row(row: pa_csv.InvalidRow) -> str:
        # Never row.text: it is the row's values.
        wrong_width.append((row.number, row.expected_columns, row.actual_columns))
        return "error"

    options = _csv_options(dataset)
    load.report(bytes_total=path.stat().st_size)
    batches, rows = [], 0
    with pa.OSFile(str(path)) as source:
        try:
            reader = pa_csv.open_csv(source, convert_options=options, parse_options=(
                pa_csv.ParseOptions(invalid_row_handler=invalid_row)))
            for batch in reader:
                batches.append(batch)
                rows += batch.num_rows
                load.report(rows_done=rows, bytes_done=source.tell())
        except pa.ArrowInvalid:
            if wrong_width:
                raise _wrong_width(path, *wrong_width[0]) from None
            raise
    return pa.Table.from_batches(batches, schema=reader.schema).select(
        list(dataset.column_names))


def _csv_options(dataset: Dataset) -> pa_csv.ConvertOptions:
    return pa_csv.ConvertOptions(column_types={name: pa.string() for name in dataset.column_names},
                                 strings_can_be_null=True, null_values=[""])


def _wrong_width(path: Path, number: int | None, expected: int, actual: int) -> IngestError:
    """A row with more or fewer values than the header has columns, named by its line."""
    if number is None:  # read on several threads, pyarrow cannot say which row: read on one
        numbers: list[int | None] = []

        def invalid_row(row: pa_csv.InvalidRow) -> str:
            numbers.append(row.number)
            return "error"

        with contextlib.suppress(pa.ArrowInvalid):
            pa_csv.read_csv(path, read_options=pa_csv.ReadOptions(use_threads=False),
                            parse_options=pa_csv.ParseOptions(invalid_row_handler=invalid_row),
                            convert_options=pa_csv.ConvertOptions(
                                column_types={}, strings_can_be_null=True))
        number = numbers[0] if numbers else None
    where = f"line {number} (data row {number - 1})" if number else "a row"
    return IngestError(f"{path}: {where}: the row has {actual} values, the header names "
                       f"{expected} columns")


def _read_parquet(path: Path, dataset: Dataset, load: Load) -> pa.Table:
    with pa_parquet.ParquetFile(path) as file:
        _check_columns(path, dataset, file.schema_arrow.names)
        load.report(rows_total=file.metadata.num_rows)
        columns = list(dataset.column_names)
        batches, rows = [], 0
        for batch in file.iter_batches(columns=columns):
            batches.append(batch)
            rows += batch.num_rows
            load.report(rows_done=rows)
        schema = pa.schema([file.schema_arrow.field(name) for name in columns])
    return pa.Table.from_batches(batches, schema=schema)


def _violations(column: Column) -> list[tuple[str, str]]:
    """(SQL condition that is true for a bad value, what is wrong) for one column."""
    raw = quote_identifier(column.name)
    cast = f"TRY_CAST({raw} AS {column.type})"
    checks = [(f"{raw} IS NOT NULL AND {cast} IS NULL", f"is not a valid {column.type}")]
    if not column.nullable:
        checks.append((f"{raw} IS NULL", "is empty, but the column does not allow NULL"))
    if column.type.startswith("DECIMAL"):
        checks.append((f"TRY_CAST({raw} AS DOUBLE) <> TRY_CAST({cast} AS DOUBLE)",
                       f"has more decimal places than {column.type} holds"))
    if column.allowed:
        listed = ", ".join("'" + v.replace("'", "''") + "'" for v in column.allowed)
        checks.append((f"{cast} NOT IN ({listed})", f"must be one of {', '.join(column.allowed)}"))
    if column.pattern:
        pattern = column.pattern.replace("'", "''")
        checks.append((f"NOT regexp_full_match({cast}, '{pattern}')",
                       f"does not match the pattern {column.pattern}"))
    return checks


def first_violation(cursor: duckdb.DuckDBPyConnection,
                    dataset: Dataset) -> tuple[int, str, str] | None:
    """The first bad value in the staged rows: (row index from 0, column, problem), or None."""
    checks = [(column, sql, problem) for column in dataset.columns
              for sql, problem in _violations(column)]
    minima = ", ".join(f"min(CASE WHEN {sql} THEN {ROW_NUMBER} END)" for _, sql, _ in checks)
    (found,) = cursor.execute(f"SELECT {minima} FROM {STAGING}").fetchall()
    bad = [(row, column, problem) for row, (column, _, problem) in zip(found, checks, strict=True)
           if row is not None]
    if not bad:
        return None
    row, column, problem = min(bad, key=lambda b: b[0])
    return row, column.name, problem


def add_rank_column(cursor: duckdb.DuckDBPyConnection, dataset: Dataset) -> None:
    """Give a stored table the hidden per-person row rank, and rank rows that have none (a
    file made by another tool, or by an older cityfed)."""
    cursor.execute(f"ALTER TABLE {quote_identifier(dataset.name)} ADD COLUMN IF NOT EXISTS "
                   f"{quote_identifier(PERSON_ROW_RANK)} INTEGER")
    cursor.execute("BEGIN TRANSACTION")  # the rewrite in rank order is all or nothing
    try:
        rank_rows_if_new(cursor, dataset)
        cursor.execute("COMMIT")
    except BaseException:
        roll_back(cursor)
        raise


def roll_back(cursor: duckdb.DuckDBPyConnection) -> None:
    """Roll back the open transaction, if DuckDB has not already ended it: a commit that failed
    to write (a full disk) leaves none, and ROLLBACK would hide why it failed."""
    with contextlib.suppress(duckdb.TransactionException):
        cursor.execute("ROLLBACK")


def rank_rows_if_new(cursor: duckdb.DuckDBPyConnection, dataset: Dataset) -> None:
    """When any row has no rank yet (new rows, or a file made by another tool), draw a new
    random order of every person's rows, rank them in it, and rewrite the table in rank order.

    A private answer reads a person's rows up to its max_rows_per_person in this order (see
    node.compile.compile_private_plan); stored in rank order, those rows are a prefix of the
    table that DuckDB's zone maps find without reading the rest. Drawing the order again for
    everyone, rather than ranking new rows after old ones, keeps newer rows counting."""
    table, rank = quote_identifier(dataset.name), quote_identifier(PERSON_ROW_RANK)
    (unranked,) = cursor.execute(f"SELECT count(*) FROM {table} WHERE {rank} IS NULL").fetchone()
    if not unranked:
        return
    cursor.execute(
        f"CREATE TEMPORARY TABLE {SORTED} AS SELECT * EXCLUDE ({rank}), "
        f"CAST(row_number() OVER (PARTITION BY {dataset.unit_sql('row')} "
        f"ORDER BY hash(row.rowid, ?)) AS INTEGER) AS {RANKED} "
        f"FROM {table} AS row ORDER BY {RANKED}", [secrets.randbits(63)])
    # Inside the caller's transaction: a failure rolls the temporary table back with the rest
    # (a DROP after a failure would itself fail, in an aborted transaction, and hide why).
    cursor.execute(f"DELETE FROM {table}")
    cursor.execute(f"INSERT INTO {table} SELECT * FROM {SORTED}")
    cursor.execute(f"DROP TABLE {SORTED}")


def load_into(cursor: duckdb.DuckDBPyConnection, dataset: Dataset, path: Path,
              mode: IngestMode, load: Load | None = None) -> IngestResult:
    """Load a file in one transaction; `load` follows it and can stop it (see Load)."""
    load = load or Load()
    table = read_file(path, dataset, load)
    table = table.append_column(ROW_NUMBER, pa.array(np.arange(table.num_rows, dtype=np.int64)))
    target = quote_identifier(dataset.name)
    load.attach(cursor)
    try:
        load.report(phase=Phase.CHECKING, rows_done=0, rows_total=table.num_rows)
        for done, chunk in _chunks(table):
            cursor.register(STAGING, chunk)
            violation = first_violation(cursor, dataset)
            if violation is not None:
                row, column, problem = violation
                where = f"line {row + 2} (data row {row + 1})" \
                    if path.suffix.lower() == ".csv" else f"row {row + 1}"
                raise IngestError(f"{path}: {where}, column {column}: the value {problem}")
            load.report(rows_done=done)
        columns = ", ".join(
            f"CAST({quote_identifier(c.name)} AS {c.type})" for c in dataset.columns
        )
        names = ", ".join(quote_identifier(c.name) for c in dataset.columns)
        load.report(phase=Phase.WRITING, rows_done=0)
        cursor.execute("BEGIN TRANSACTION")
        try:
            if mode is IngestMode.REPLACE:
                cursor.execute(f"DELETE FROM {target}")
            for done, chunk in _chunks(table):
                cursor.register(STAGING, chunk)
                cursor.execute(
                    f"INSERT INTO {target} ({names}) SELECT {columns} FROM {STAGING} "
                    f"ORDER BY {ROW_NUMBER}"
                )
                load.report(rows_done=done)
            load.report(phase=Phase.ORDERING, rows_done=0)
            rank_rows_if_new(cursor, dataset)
            load.commit(cursor)
        except BaseException:
            roll_back(cursor)
            raise
    except duckdb.InterruptException:
        load.check()  # raises the error the load was stopped with
        raise
    finally:
        load.attach(None)
        with contextlib.suppress(duckdb.Error):
            cursor.unregister(STAGING)
    ((count,),) = cursor.execute(f"SELECT count(*) FROM {target}").fetchall()
    return IngestResult(rows_loaded=table.num_rows, row_count=count)


def _chunks(table: pa.Table) -> Iterator[tuple[int, pa.Table]]:
    """Consecutive slices of the staged rows (no copies), each with the rows done after it."""
    for offset in range(0, max(table.num_rows, 1), CHUNK_ROWS):
        chunk = table.slice(offset, CHUNK_ROWS)
        yield offset + chunk.num_rows, chunk
