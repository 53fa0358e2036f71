"""The static type checker: it refuses, before anything runs, every plan DuckDB would have to
cast a row's value in (and so could quote it in an error), names where and which types, never a
literal's value; and every plan it accepts runs on DuckDB over the real schema without a type or
conversion error, with the types it derived."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import duckdb
import pytest
from cityfed.v1 import query_pb2
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from federation.errors import InvalidQuery
from federation.query.compile import ARITY, DATE_PART_NAMES, compile_expression, quote_identifier
from federation.query.datasets import DATASETS, create_table_sql
from federation.query.finish import finish
from federation.query.merge import merge_partials
from federation.query.plan import check_plan
from federation.query.sql import parse_query
from federation.query.typecheck import (
    BIGINT,
    DATE,
    DOUBLE,
    HUGEINT,
    INTEGER,
    TIMESTAMP,
    VARCHAR,
    QueryTypeError,
    SqlType,
    check_plan_types,
    decimal,
    parse_type,
)
from federation.query.values import to_value
from node.compile import compile_plan

F = query_pb2.Function
A = query_pb2.AggregateFunction


def refusal(sql: str) -> str:
    with pytest.raises(QueryTypeError) as refused:
        parse_query(sql)
    return str(refused.value)


# One rule per test: the message says where, and which types.

def test_a_string_compared_with_a_number_is_refused_naming_both_types_and_the_place():
    message = refusal("SELECT count(*) FROM population WHERE name = 1")
    assert message == (
        "refused the plan before asking any city: WHERE: the 2nd argument of '=' is INTEGER, "
        "the 1st is VARCHAR; compare a column with a value of its own type "
        "(at character 39 of the SQL)")


def test_a_string_used_as_a_condition_is_refused():
    assert "WHERE: the condition is VARCHAR" in refusal(
        "SELECT count(*) FROM population WHERE name")
    assert "the 1st argument of NOT is VARCHAR" in refusal(
        "SELECT count(*) FROM population WHERE NOT name")
    assert "the 2nd argument of OR is VARCHAR" in refusal(
        "SELECT count(*) FROM population WHERE sex = 'F' OR name")
    assert "HAVING: the condition is BIGINT" in refusal(
        "SELECT sex, count(*) FROM population GROUP BY sex HAVING count(*)")


def test_arithmetic_on_a_string_is_refused():
    message = refusal("SELECT sum(monthly_amount + person_id) FROM social_insurance")
    assert "aggregate 1: the 2nd argument of '+' is VARCHAR" in message


def test_the_path_to_a_nested_expression_is_named():
    message = refusal("SELECT count(*) FROM population WHERE sex = 'F' AND "
                      "(year(birth_date) > 1950 OR name * 2 > 1)")
    assert ("WHERE, in the 2nd argument of AND, in the 2nd argument of OR, in the 1st argument "
            "of '>': the 1st argument of '*' is VARCHAR") in message


def test_a_date_compared_with_a_string_or_a_number_is_refused():
    assert "the 2nd argument of '>' is VARCHAR, the 1st is DATE" in refusal(
        "SELECT count(*) FROM population WHERE birth_date > '1990-01-01'")
    assert "the 2nd argument of BETWEEN is INTEGER, the 1st is DATE" in refusal(
        "SELECT count(*) FROM population WHERE birth_date BETWEEN 1 AND 2")
    assert "compare a DATE with a DATE" in refusal(
        "SELECT count(*) FROM population WHERE birth_date < TIMESTAMP '2000-01-01 00:00:00'")


def test_date_functions_take_only_dates():
    assert "the argument of year() is VARCHAR" in refusal(
        "SELECT year(name), count(*) FROM population GROUP BY 1")
    assert "the argument of hour() is DATE" in refusal(
        "SELECT hour(birth_date), count(*) FROM population GROUP BY 1")
    assert "the 2nd argument of date_trunc() is DECIMAL(8,2)" in refusal(
        "SELECT date_trunc('day', fare), count(*) FROM transit_trips GROUP BY 1")
    assert "the arguments of date_diff() are DATE and TIMESTAMP" in refusal(
        "SELECT count(*) FROM population WHERE date_diff('day', birth_date, "
        "TIMESTAMP '2020-01-01 00:00:00') > 1")


def test_dates_move_only_by_an_integer_number_of_days():
    assert "'+' is not defined for DATE and BIGINT" in refusal(
        "SELECT count(*) FROM population WHERE birth_date + 10000000000 > DATE '2000-01-01'")
    assert "'*' is not defined for DATE and INTEGER" in refusal(
        "SELECT count(*) FROM population WHERE birth_date * 2 IS NULL")
    assert "TIMESTAMP - TIMESTAMP is an INTERVAL" in refusal(
        "SELECT count(*) FROM transit_trips WHERE tapped_at - tapped_at IS NULL")


def test_arithmetic_and_date_functions_refuse_an_untyped_null():
    # DuckDB gives such constant expressions whatever type folding leaves, so none is assumed.
    assert "the 2nd argument of '+' is an untyped NULL" in refusal(
        "SELECT sum(monthly_amount + NULL) FROM social_insurance")
    assert "the argument of year() is NULL" in refusal(
        "SELECT count(*) FROM population WHERE year(NULL) = 1")


def test_sum_and_avg_take_numbers():
    assert "aggregate 1: sum(VARCHAR) is not defined" in refusal(
        "SELECT sum(station) FROM transit_trips")
    assert "aggregate 2: avg(DATE) is not defined" in refusal(
        "SELECT count(*), avg(birth_date) FROM population")


def test_a_decimal_that_would_narrow_a_column_is_refused():
    # DuckDB would cast monthly_amount to DECIMAL(38,30), failing on (and quoting) any amount
    # of more than eight integer digits.
    message = refusal("SELECT count(*) FROM social_insurance "
                      "WHERE monthly_amount = 0.000000000000000000000000000001")
    assert "DECIMAL(12,2) and DECIMAL(31,30)" in message and "38 digits" in message
    assert "DECIMAL(12,2) and HUGEINT" in refusal(
        "SELECT sum(monthly_amount + 100000000000000000000) FROM social_insurance")
    assert "their product needs 39 digits after the point" in refusal(
        f"SELECT sum(monthly_amount * 0.{'0' * 36}1) FROM social_insurance")


def test_after_the_merge_expressions_are_typed_too():
    assert "SELECT column 2: the 2nd argument of '+' is VARCHAR" in refusal(
        "SELECT sex, count(*) + sex FROM population GROUP BY sex")
    assert "ORDER BY key 1: the argument of year() is VARCHAR" in refusal(
        "SELECT sex, count(*) FROM population GROUP BY sex ORDER BY year(min(name))")


def test_a_message_never_quotes_a_literal():
    secret = "110101199001011234"
    for sql in (
        f"SELECT count(*) FROM population WHERE name = {secret}",
        f"SELECT count(*) FROM population WHERE person_id + '{secret}' IS NULL",
        f"SELECT count(*) FROM population WHERE birth_date = '{secret}'",
        f"SELECT count(*) FROM social_insurance WHERE monthly_amount = 0.{secret}{secret}",
        f"SELECT count(*) FROM population WHERE birth_date > DATE '{secret}'",
        f"SELECT count(*) FROM population WHERE name = 'x' '{secret}'",
    ):
        with pytest.raises(InvalidQuery) as refused:
            parse_query(sql)
        assert secret not in str(refused.value)
        assert secret[:6] not in str(refused.value)


def _plan(dataset: str, filter_: query_pb2.Expression) -> query_pb2.AggregatePlan:
    return query_pb2.AggregatePlan(
        dataset=dataset, filter=filter_,
        aggregates=[query_pb2.Aggregate(function=A.AGGREGATE_FUNCTION_COUNT_STAR)])


def _call(function, *arguments) -> query_pb2.Expression:
    return query_pb2.Expression(call=query_pb2.Call(function=function, arguments=arguments))


def _column(name: str) -> query_pb2.Expression:
    return query_pb2.Expression(column=name)


def _literal(**value) -> query_pb2.Expression:
    return query_pb2.Expression(literal=query_pb2.Value(**value))


@pytest.mark.parametrize("literal", [
    {"decimal_value": "1e400"}, {"decimal_value": "NaN"}, {"decimal_value": "12,5"},
    {"big_int_value": "1" * 40}, {"big_int_value": "0x10"},
    {"date_value": -(2**31)}, {"timestamp_value": -(2**63)},
    {"timestamp_value": -9_223_372_022_400_000_001},
])
def test_a_malformed_literal_in_a_structured_plan_is_refused_without_its_value(literal):
    plan = _plan("population", _call(F.FUNCTION_IS_NULL, _literal(**literal)))
    with pytest.raises(QueryTypeError) as refused:
        check_plan(plan)
    (value,) = literal.values()
    assert str(value) not in str(refused.value)


@pytest.mark.parametrize("literal", [
    {"date_value": 2**31 - 1}, {"date_value": -(2**31 - 1)}, {"date_value": -735_160},
    {"timestamp_value": 2**63 - 1}, {"timestamp_value": -(2**63 - 1)},
    {"timestamp_value": -9_223_372_022_400_000_000}, {"timestamp_value": 2**63 - 2},
])
def test_a_date_or_timestamp_literal_may_be_any_duckdb_holds(literal):
    """±infinity, and every year DuckDB holds, as it holds them (0044-03-15 (BC) is day
    -735160)."""
    check_plan(_plan("population", _call(F.FUNCTION_IS_NULL, _literal(**literal))))


def test_a_structured_plan_is_checked_at_the_node_too():
    plan = _plan("population", _call(F.FUNCTION_EQUAL, _column("name"), _literal(int_value=7)))
    with pytest.raises(QueryTypeError, match=r"^WHERE: the 2nd argument of '=' is INTEGER"):
        check_plan(plan)


@pytest.mark.parametrize("sql", [
    # What the oracle relies on: decimals with integers and decimals, dates with date literals,
    # date ± integer, date - date, NULL literals, integer division of decimals.
    "SELECT sum(monthly_amount * 12), sum(monthly_amount // 100), avg(monthly_amount / 3) "
    "FROM social_insurance WHERE monthly_amount > 1500 AND monthly_amount < 2000.5",
    "SELECT count(*) FROM population WHERE birth_date + 30 > DATE '1990-01-01' "
    "AND deceased_on - birth_date > 365 AND registered_on - 1 IS NOT NULL",
    "SELECT count(*) FROM population WHERE deceased_on = NULL OR NULL OR name IN (NULL, 'x')",
    "SELECT year(birth_date) BETWEEN 1950 AND 1960, count(*) FROM population GROUP BY 1",
    "SELECT date_trunc('month', tapped_at), date_diff('hour', tapped_at, tapped_at), count(*) "
    "FROM transit_trips GROUP BY 1, 2",
    "SELECT date_trunc('month', birth_date), date_diff('year', birth_date, DATE '2026-01-01') "
    "// 10, count(*) FROM population GROUP BY 1, 2",
    "SELECT count(*) FROM transit_trips WHERE fare > 1e2 AND fare % 2 = 0.5",
    "SELECT sum(fare) % 7, -sum(fare), count(*) * 1.5, sum(fare) / count(*) FROM transit_trips",
])
def test_well_typed_queries_pass(sql):
    parse_query(sql)


def test_after_the_merge_a_column_of_nulls_keeps_its_checked_type():
    # Every city's max is NULL: Arrow alone would type the column NULL, and year() of it would
    # not bind.
    query = parse_query("SELECT year(max(deceased_on)), sum(year(deceased_on)) + 1 AS s "
                        "FROM population")
    nothing = query_pb2.PartialGroup(aggregates=[query_pb2.PartialAggregate()] * 2)
    assert finish(query, merge_partials(query.plan, [[nothing]])).rows == [(None, None)]


def test_schema_types_parse():
    assert parse_type("DECIMAL(12,2)") == decimal(12, 2)
    assert [parse_type(t) for t in ("VARCHAR", "DATE", "TIMESTAMP")] == [VARCHAR, DATE, TIMESTAMP]
    assert {parse_type(c.type) for d in DATASETS.values() for c in d.columns}


# Every plan the checker accepts runs on DuckDB, over the real schema, without a type error.

_ROWS = {
    "VARCHAR": ["Zhang San", "110101199001011234", "2020-01-01", "true", None],
    "DATE": [dt.date(1950, 1, 2), dt.date(2024, 2, 29), dt.date(1, 1, 1), None],
    "TIMESTAMP": [dt.datetime(2026, 9, 1, 8, 30), dt.datetime(1970, 1, 1), None],
    "DECIMAL(12,2)": [Decimal("98765.43"), Decimal("9999999999.99"), Decimal("-0.01"), None],
    "DECIMAL(8,2)": [Decimal("2.50"), Decimal("999999.99"), Decimal("0.00"), None],
}


@pytest.fixture(scope="module")
def store():
    """Every standard table, holding a few rows of awkward values (NULLs where allowed)."""
    connection = duckdb.connect()
    for dataset in DATASETS.values():
        connection.execute(create_table_sql(dataset))
        width = max(len(_ROWS[c.type]) for c in dataset.columns)
        rows = []
        for i in range(width):
            row = []
            for c in dataset.columns:
                values = [v for v in _ROWS[c.type] if v is not None or c.nullable]
                row.append(values[i % len(values)])
            rows.append(row)
        marks = ", ".join("?" for _ in dataset.columns)
        connection.executemany(f"INSERT INTO {quote_identifier(dataset.name)} VALUES ({marks})",
                               rows)
    yield connection
    connection.close()


def _literals() -> st.SearchStrategy[query_pb2.Expression]:
    values = st.one_of(
        st.just({}),
        st.booleans().map(lambda v: {"bool_value": v}),
        st.sampled_from([0, 2, -7, 2**31 - 1, -(2**31), 2**31, 2**62]).map(
            lambda v: {"int_value": v}),
        st.sampled_from(["170141183460469231731687303715884105727", "-5"]).map(
            lambda v: {"big_int_value": v}),
        st.sampled_from([0.5, -1e300, 3.0]).map(lambda v: {"double_value": v}),
        st.sampled_from(["0.5", "98765.43", "12", "-0.001", "0." + "0" * 29 + "1",
                         "1" * 30 + ".5", "1" * 40]).map(lambda v: {"decimal_value": v}),
        st.sampled_from(["Zhang San", "2020-01-01", "12"]).map(lambda v: {"string_value": v}),
        st.sampled_from([0, 19000, -700000]).map(lambda v: {"date_value": v}),
        st.sampled_from([0, 1_780_000_000_000_000]).map(lambda v: {"timestamp_value": v}),
    )
    return values.map(lambda v: query_pb2.Expression(literal=query_pb2.Value(**v)))


_FUNCTIONS = sorted(f for f in ARITY if f not in (F.FUNCTION_DATE_TRUNC, F.FUNCTION_DATE_DIFF))
_PARTS = st.sampled_from(sorted(DATE_PART_NAMES)).map(lambda p: _literal(string_value=p))


def _any_expression(dataset: str) -> st.SearchStrategy[query_pb2.Expression]:
    """Any expression at all, mostly ill-typed."""
    columns = st.sampled_from(DATASETS[dataset].column_names).map(_column)

    def extend(inner):
        def call(function, arguments):
            return _call(function, *arguments[:ARITY[function][1] or len(arguments)])

        plain = st.builds(call, st.sampled_from(_FUNCTIONS), st.lists(inner, min_size=3,
                                                                      max_size=3))
        trunc = st.builds(lambda p, a: _call(F.FUNCTION_DATE_TRUNC, p, a), _PARTS, inner)
        diff = st.builds(lambda p, a, b: _call(F.FUNCTION_DATE_DIFF, p, a, b), _PARTS, inner,
                         inner)
        return st.one_of(plain, plain, plain, trunc, diff)

    return st.recursive(st.one_of(columns, _literals()), extend, max_leaves=6)


_KINDS = ("number", "date", "timestamp", "text", "boolean")
_LITERAL_KINDS = {"number": ("int_value", "big_int_value", "double_value", "decimal_value"),
                  "date": ("date_value",), "timestamp": ("timestamp_value",),
                  "text": ("string_value",), "boolean": ("bool_value",)}


def _kind_of_column(type_text: str) -> str:
    return {"VARCHAR": "text", "DATE": "date", "TIMESTAMP": "timestamp"}.get(type_text, "number")


@st.composite
def _typed(draw, dataset: str, kind: str, depth: int = 3) -> query_pb2.Expression:
    """An expression meant to be of one kind (number, date, ...), built the way a caller would
    write one; now and then anything at all, so that mistakes are tried too."""
    if draw(st.integers(0, 19)) == 0:
        return draw(_any_expression(dataset))
    columns = [c.name for c in DATASETS[dataset].columns if _kind_of_column(c.type) == kind]
    leaf_only = depth == 0 or draw(st.integers(0, 2)) == 0
    if leaf_only or kind == "text":
        if columns and draw(st.booleans()):
            return _column(draw(st.sampled_from(columns)))
        literal = draw(_literals())
        if literal.literal.WhichOneof("kind") in (*_LITERAL_KINDS[kind], None):
            return literal
        return _column(columns[0]) if columns else draw(_typed(dataset, kind, 0))

    def sub(wanted: str):
        return draw(_typed(dataset, wanted, depth - 1))

    if kind == "number":
        shape = draw(st.sampled_from(["arithmetic", "arithmetic", "negate", "part", "diff",
                                      "days"]))
        if shape == "arithmetic":
            function = draw(st.sampled_from(sorted(f for f in ARITY if ARITY[f] == (2, 2)
                                                   and f <= F.FUNCTION_MODULO)))
            return _call(function, sub("number"), sub("number"))
        if shape == "negate":
            return _call(F.FUNCTION_NEGATE, sub("number"))
        if shape == "part":
            function = draw(st.sampled_from([F.FUNCTION_YEAR, F.FUNCTION_MONTH, F.FUNCTION_DAY,
                                             F.FUNCTION_HOUR]))
            return _call(function, sub("timestamp" if function == F.FUNCTION_HOUR
                                       else draw(st.sampled_from(["date", "timestamp"]))))
        if shape == "diff":
            moment = draw(st.sampled_from(["date", "timestamp"]))
            return _call(F.FUNCTION_DATE_DIFF, draw(_PARTS), sub(moment), sub(moment))
        return _call(F.FUNCTION_SUBTRACT, sub("date"), sub("date"))
    if kind == "date":
        days = _literal(int_value=draw(st.sampled_from([1, -30, 2**31 - 1, -(2**31)])))
        function = draw(st.sampled_from([F.FUNCTION_ADD, F.FUNCTION_SUBTRACT]))
        return _call(function, sub("date"), days)
    if kind == "timestamp":
        return _call(F.FUNCTION_DATE_TRUNC, draw(_PARTS),
                     sub(draw(st.sampled_from(["date", "timestamp"]))))
    shape = draw(st.sampled_from(["compare", "compare", "logic", "null", "in", "between"]))
    compared = draw(st.sampled_from(["number", "date", "timestamp", "text"]))
    if shape == "compare":
        function = draw(st.sampled_from(sorted(f for f in ARITY if ARITY[f] == (2, 2)
                                               and f >= F.FUNCTION_EQUAL)))
        return _call(function, sub(compared), sub(compared))
    if shape == "logic":
        function = draw(st.sampled_from([F.FUNCTION_AND, F.FUNCTION_OR, F.FUNCTION_NOT]))
        count = 1 if function == F.FUNCTION_NOT else 2
        return _call(function, *(sub("boolean") for _ in range(count)))
    if shape == "null":
        return _call(draw(st.sampled_from([F.FUNCTION_IS_NULL, F.FUNCTION_IS_NOT_NULL])),
                     sub(draw(st.sampled_from(_KINDS))))
    if shape == "in":
        return _call(draw(st.sampled_from([F.FUNCTION_IN, F.FUNCTION_NOT_IN])),
                     *(sub(compared) for _ in range(3)))
    return _call(draw(st.sampled_from([F.FUNCTION_BETWEEN, F.FUNCTION_NOT_BETWEEN])),
                 *(sub(compared) for _ in range(3)))


@st.composite
def _plans(draw) -> query_pb2.AggregatePlan:
    dataset = draw(st.sampled_from(sorted(DATASETS)))
    plan = query_pb2.AggregatePlan(dataset=dataset)
    if draw(st.booleans()):
        plan.filter.CopyFrom(draw(_typed(dataset, "boolean")))
    for kind in draw(st.lists(st.sampled_from(_KINDS), max_size=2)):
        plan.group_by.append(draw(_typed(dataset, kind)))
    for function in draw(st.lists(st.sampled_from(sorted(set(A.values()) - {0})), min_size=1,
                                  max_size=2)):
        aggregate = plan.aggregates.add(function=function)
        if function != A.AGGREGATE_FUNCTION_COUNT_STAR:
            kind = "number" if function in (A.AGGREGATE_FUNCTION_SUM,
                                            A.AGGREGATE_FUNCTION_AVG) else draw(
                st.sampled_from(_KINDS))
            aggregate.argument.CopyFrom(draw(_typed(dataset, kind)))
    return plan


# What a run may still fail with: arithmetic out of range, division by zero, a date beyond
# what a timestamp can hold. Never a cast of a value from one type to another.
_RANGE_ERRORS = re.compile(r"Overflow|out of range|Division by zero|not in timestamp range|"
                           r"to microseconds")
_CAST_ERRORS = re.compile(r"Could not convert string|Casting value|Could not cast value|"
                          r"can't be cast|Conversion Error: Unimplemented")


def _negated_minimum(value: int) -> query_pb2.AggregatePlan:
    plan = query_pb2.AggregatePlan(dataset="population")
    plan.group_by.add().call.function = query_pb2.Function.FUNCTION_NEGATE
    plan.group_by[0].call.arguments.add().literal.int_value = value
    plan.aggregates.add(function=query_pb2.AggregateFunction.AGGREGATE_FUNCTION_COUNT_STAR)
    return plan


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
@given(plan=_plans())
@example(plan=_negated_minimum(-(2 ** 31)))  # DuckDB widens: -(-2147483648) is a BIGINT
@example(plan=_negated_minimum(-(2 ** 63)))
def test_every_plan_the_checker_accepts_runs_without_a_type_or_conversion_error(store, plan):
    try:
        types = check_plan_types(plan, check_plan(plan))
    except InvalidQuery:
        return
    compiled = compile_plan(plan)
    try:
        store.execute(compiled.sql, compiled.params).fetchall()
    except (duckdb.OutOfRangeException, duckdb.InvalidInputException,
            duckdb.ConversionException) as error:
        assert _RANGE_ERRORS.search(str(error)) and not _CAST_ERRORS.search(str(error)), error
    dataset = DATASETS[plan.dataset]
    for key, derived in zip(plan.group_by, types.keys, strict=True):
        _assert_duckdb_agrees(store, dataset.name, key, derived)


def _assert_duckdb_agrees(store, table: str, expression, derived: SqlType) -> None:
    def column(e):
        return quote_identifier(e.column)

    fragment = compile_expression(expression, column)
    (found,) = store.execute(f"SELECT typeof({fragment.text}) FROM {quote_identifier(table)} "
                             "LIMIT 1", fragment.params).fetchone()
    found = found.strip('"')
    if derived.name == "DECIMAL":
        match = re.fullmatch(r"DECIMAL\((\d+),(\d+)\)", found)
        assert match, (found, derived)
        # Ours may hold more integer digits than DuckDB's (products), never fewer.
        assert int(match[2]) == derived.scale and int(match[1]) <= derived.width, (found,
                                                                                   derived)
    elif derived.name == "NULL":
        assert found in ("NULL", "INTEGER", "BIGINT"), found
    else:
        assert found == derived.name, (found, derived)


@pytest.mark.parametrize(("sql", "derived"), [
    ("monthly_amount * 12", decimal(22, 2)),
    ("monthly_amount + 1.5", decimal(13, 2)),
    ("monthly_amount % 7", decimal(12, 2)),
    ("monthly_amount // 7", DOUBLE),
    ("monthly_amount / 7", DOUBLE),
    ("year(enrolled_on) * 2", BIGINT),
    ("date_diff('day', enrolled_on, last_paid_on) + 100000000000000000000", HUGEINT),
    ("-(last_paid_on - enrolled_on)", BIGINT),
    ("enrolled_on - 3", DATE),
    ("date_trunc('week', enrolled_on)", TIMESTAMP),
    ("2 * 3", INTEGER),
])
def test_derived_types_are_duckdbs(store, sql, derived):
    query = parse_query(f"SELECT {sql}, count(*) FROM social_insurance GROUP BY 1")
    (key,) = query.plan.group_by
    assert check_plan_types(query.plan, DATASETS["social_insurance"]).keys == (derived,)
    _assert_duckdb_agrees(store, "social_insurance", key, derived)


def test_literal_values_bind_to_the_types_the_checker_gives_them(store):
    for value, expected in ((7, "INTEGER"), (-(2**31), "INTEGER"), (2**31, "BIGINT")):
        fragment = compile_expression(query_pb2.Expression(literal=to_value(value)),
                                      lambda e: "")
        assert store.execute(f"SELECT typeof({fragment.text})",
                             fragment.params).fetchone()[0] == expected
