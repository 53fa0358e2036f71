"""Load a CSV or Parquet file into a standard dataset: validated, then all or nothing.

The file is read by pyarrow in this process (the sandboxed DuckDB may not open files); DuckDB
then checks every value against the schema in one vectorised pass and inserts the rows inside
one transaction, so a reader sees the old rows until the new ones are complete and a bad file
changes nothing.
"""

from __future__ import annotations

import contextlib
import csv
import enum
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pa_parquet

from federation.compile import quote_identifier
from federation.datasets import PERSON_ROW_RANK, Column, Dataset
from federation.errors import FileMissing, IngestError

ROW_NUMBER = "__cityfed_row"
STAGING = "__cityfed_staging"
SORTED = "__cityfed_sorted"
RANKED = "__cityfed_rank"
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


def read_file(path: Path, dataset: Dataset) -> pa.Table:
    """Read a file into Arrow, CSV columns as text; the columns must be exactly the dataset's."""
    if not path.is_file():
        raise FileMissing(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return _read_csv(path, dataset)
        if suffix == ".parquet":
            return _read_parquet(path, dataset)
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


def _read_csv(path: Path, dataset: Dataset) -> pa.Table:
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
    batches = []
    with pa.OSFile(str(path)) as source:
        try:
            reader = pa_csv.open_csv(source, convert_options=options, parse_options=(
                pa_csv.ParseOptions(invalid_row_handler=invalid_row)))
            for batch in reader:
                batches.append(batch)
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


def _read_parquet(path: Path, dataset: Dataset) -> pa.Table:
    with pa_parquet.ParquetFile(path) as file:
        _check_columns(path, dataset, file.schema_arrow.names)
        columns = list(dataset.column_names)
        batches = list(file.iter_batches(columns=columns))
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
    try:
        cursor.execute(f"DELETE FROM {table}")
        cursor.execute(f"INSERT INTO {table} SELECT * FROM {SORTED}")
    finally:
        cursor.execute(f"DROP TABLE {SORTED}")


def load_into(cursor: duckdb.DuckDBPyConnection, dataset: Dataset, path: Path,
              mode: IngestMode) -> IngestResult:
    table = read_file(path, dataset)
    table = table.append_column(ROW_NUMBER, pa.array(range(table.num_rows), pa.int64()))
    target = quote_identifier(dataset.name)
    cursor.register(STAGING, table)
    try:
        violation = first_violation(cursor, dataset)
        if violation is not None:
            row, column, problem = violation
            where = f"line {row + 2} (data row {row + 1})" if path.suffix.lower() == ".csv" \
                else f"row {row + 1}"
            raise IngestError(f"{path}: {where}, column {column}: the value {problem}")
        columns = ", ".join(
            f"CAST({quote_identifier(c.name)} AS {c.type})" for c in dataset.columns
        )
        names = ", ".join(quote_identifier(c.name) for c in dataset.columns)
        cursor.execute("BEGIN TRANSACTION")
        try:
            if mode is IngestMode.REPLACE:
                cursor.execute(f"DELETE FROM {target}")
            cursor.execute(
                f"INSERT INTO {target} ({names}) SELECT {columns} FROM {STAGING} "
                f"ORDER BY {ROW_NUMBER}"
            )
            rank_rows_if_new(cursor, dataset)
            cursor.execute("COMMIT")
        except BaseException:
            roll_back(cursor)
            raise
    finally:
        cursor.unregister(STAGING)
    ((count,),) = cursor.execute(f"SELECT count(*) FROM {target}").fetchall()
    return IngestResult(rows_loaded=table.num_rows, row_count=count)
