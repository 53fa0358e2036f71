"""After the merge: the SELECT list, HAVING, ORDER BY, LIMIT and OFFSET over merged groups.

When every output and sort key is a plain group key or aggregate and there is no HAVING (most
questions), this is done in Python. Otherwise the merged groups go into a sandboxed in-memory
DuckDB and the expressions run there, compiled with bound parameters, so that arithmetic,
NULL handling and comparisons after the merge mean exactly what they mean in DuckDB.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from decimal import Decimal

import duckdb
import pyarrow as pa
from cityfed.v1 import query_pb2

from federation.errors import InvalidQuery
from federation.query.compile import as_number, compile_expression
from federation.query.datasets import DATASETS
from federation.query.merge import MergedGroups
from federation.query.runtime_errors import runtime_failure
from federation.query.sandbox import sandboxed_memory_connection
from federation.query.typecheck import SqlType, check_plan_types, check_query_types
from federation.query.values import PyValue, decode_temporal, nan_last, to_value

A = query_pb2.AggregateFunction
_INT64_MAX = 2**63 - 1

_local = threading.local()


@dataclass(frozen=True)
class Table:
    column_names: list[str]
    rows: list[tuple[PyValue, ...]]
    # Per row, the index of the merged group it shows (see MergedGroups); empty when unknown.
    groups: list[int] = field(default_factory=list)


def finish(query: query_pb2.FederatedQuery, merged: MergedGroups) -> Table:
    names = [column.name for column in query.columns]
    finished = (_finish_in_python if _is_simple(query) else _finish_in_duckdb)(query, merged)
    return Table(names, [row[:-1] for row in finished], [row[-1] for row in finished])


def _is_reference(expression: query_pb2.Expression) -> bool:
    return expression.WhichOneof("kind") in ("group_key", "aggregate")


def _is_simple(query: query_pb2.FederatedQuery) -> bool:
    return (not query.HasField("having")
            and all(_is_reference(c.expression) for c in query.columns)
            and all(_is_reference(k.expression) for k in query.order_by))


def _pick(expression: query_pb2.Expression, key: tuple, aggregates: list) -> PyValue:
    if expression.WhichOneof("kind") == "group_key":
        return key[expression.group_key]
    return aggregates[expression.aggregate]


def _finish_in_python(query, merged: MergedGroups) -> list[tuple]:
    """The answer's rows, each with its merged group's index last."""
    groups = list(zip(merged.keys, merged.aggregates, range(len(merged.keys)), strict=True))
    for order in reversed(query.order_by):
        # DuckDB puts NULLs last unless asked otherwise, in both directions.
        nulls_sort_high = order.nulls_first == order.descending
        null_rank = 1 if nulls_sort_high else -1

        def sort_key(group, expression=order.expression, null_rank=null_rank):
            value = _pick(expression, *group[:2])
            return (null_rank, None) if value is None else (0, nan_last(value))

        groups.sort(key=sort_key, reverse=order.descending)
    groups = _limit(query, groups)
    return [(*(_pick(c.expression, *group[:2]) for c in query.columns), group[2])
            for group in groups]


def _limit(query, rows: list) -> list:
    end = query.offset + query.limit if query.HasField("limit") else None
    return rows[query.offset:end]


def _column(values: list[PyValue], declared: SqlType) -> pa.Array:
    if declared.is_temporal:
        # As day or microsecond numbers: Python's date types end at the year 9999, DuckDB's do not.
        field = "date_value" if declared.name == "DATE" else "timestamp_value"
        numbers = [None if v is None else getattr(to_value(v), field) for v in values]
        storage = pa.int32() if declared.name == "DATE" else pa.int64()
        return pa.array(numbers, storage).cast(_arrow_type(declared))
    if any(isinstance(v, int) and not isinstance(v, bool) and abs(v) > _INT64_MAX
           for v in values):
        values = [None if v is None else Decimal(v) for v in values]
    column = pa.array(values)
    if pa.types.is_null(column.type):
        # No value to tell the type by (every group's is NULL): the type checker's.
        return pa.nulls(len(values), _arrow_type(declared))
    return column


def _arrow_type(declared: SqlType) -> pa.DataType:
    if declared.name == "DECIMAL":
        return pa.decimal128(declared.width, declared.scale)
    return {"BOOLEAN": pa.bool_(), "INTEGER": pa.int32(), "BIGINT": pa.int64(),
            "HUGEINT": pa.decimal128(38, 0), "DOUBLE": pa.float64(), "VARCHAR": pa.string(),
            "DATE": pa.date32(), "TIMESTAMP": pa.timestamp("us")}.get(declared.name, pa.null())


def _finish_in_duckdb(query, merged: MergedGroups) -> list[tuple]:
    key_count = len(query.plan.group_by)
    types = check_plan_types(query.plan, DATASETS[query.plan.dataset])
    columns: dict[str, pa.Array] = {}
    try:
        for index in range(key_count):
            columns[f"k{index}"] = _column([key[index] for key in merged.keys],
                                           types.keys[index])
        for index in range(len(query.plan.aggregates)):
            columns[f"a{index}"] = _column([values[index] for values in merged.aggregates],
                                           types.aggregates[index])
    except pa.ArrowException:  # its text quotes the value that did not fit
        raise InvalidQuery("the cities' answers could not be combined: one of their columns "
                           "holds values of different types") from None
    columns["merged_group"] = pa.array(range(len(merged.keys)), pa.int64())
    table = pa.table(columns)

    def leaf(expression: query_pb2.Expression) -> str:
        if expression.WhichOneof("kind") == "group_key":
            return f"k{expression.group_key}"
        index = expression.aggregate
        is_integer_sum = (query.plan.aggregates[index].function == A.AGGREGATE_FUNCTION_SUM
                          and pa.types.is_integer(table.column(f"a{index}").type))
        # DuckDB sums integers into a HUGEINT; keep that width for arithmetic after the merge.
        return f"CAST(a{index} AS HUGEINT)" if is_integer_sum else f"a{index}"

    outputs = [compile_expression(c.expression, leaf) for c in query.columns]
    clauses = [(f"SELECT column {n}", o.text) for n, o in enumerate(outputs, start=1)]
    inner = [f"{o.text} AS o{n}" for n, o in enumerate(outputs)]
    params = [p for o in outputs for p in o.params]
    order_by = []
    for number, order in enumerate(query.order_by, start=1):
        key = compile_expression(order.expression, leaf)
        clauses.append((f"ORDER BY key {number}", key.text))
        inner.append(f"{key.text} AS s{number}")
        order_by.append(f"s{number} {'DESC' if order.descending else 'ASC'} "
                        f"NULLS {'FIRST' if order.nulls_first else 'LAST'}")
        params += key.params
    sql = f"SELECT {', '.join([*inner, 'merged_group'])} FROM merged"
    if query.HasField("having"):
        having = compile_expression(query.having, leaf)
        clauses.append(("HAVING", having.text))
        sql += f" WHERE {having.text}"
        params += having.params
    # The outer query gives DATE and TIMESTAMP outputs as numbers (see `as_number`).
    output_types = check_query_types(query, types)
    temporal = tuple((n, t.name) for n, t in enumerate(output_types) if t.is_temporal)
    kinds = dict(temporal)
    outer = [as_number(kinds[n], f"o{n}") if n in kinds else f"o{n}" for n in range(len(outputs))]
    sql = f"SELECT {', '.join([*outer, 'merged_group'])} FROM ({sql})"
    if order_by:
        sql += " ORDER BY " + ", ".join(order_by)
    if query.HasField("limit"):
        sql += " LIMIT ?"
        params.append(query.limit)
    if query.offset:
        sql += " OFFSET ?"
        params.append(query.offset)

    if not hasattr(_local, "connection"):
        _local.connection = sandboxed_memory_connection()
    cursor = _local.connection.cursor()
    try:
        cursor.register("merged", table)
        return decode_temporal(cursor.execute(sql, params).fetchall(), temporal)
    except duckdb.Error as error:
        raise runtime_failure(error, clauses) from None
    finally:
        cursor.close()
