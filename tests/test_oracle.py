"""The oracle: a federated answer equals DuckDB's answer to the same SQL over all cities' rows."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import duckdb
import grpc
import pytest
from cityfed.v1 import query_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from federation.errors import InvalidQuery
from federation.query.merge import merge_partials
from federation.query.values import (
    FarDate,
    FarTimestamp,
    date_from_days,
    from_value,
    timestamp_from_micros,
    to_value,
)
from tests import sparkkit
from tests.regionkit import aggregate, assert_same_rows, start_region

A = query_pb2.AggregateFunction

BATTERY = [
    "SELECT count(*) FROM population",
    "SELECT count(*), count(deceased_on), min(birth_date), max(birth_date) FROM population",
    "SELECT sex, count(*) FROM population GROUP BY sex",
    "SELECT district_code, sex, count(*) AS n FROM population GROUP BY district_code, sex",
    "SELECT date_diff('year', birth_date, DATE '2026-01-01') // 10 * 10 AS age_band, count(*) "
    "FROM population WHERE deceased_on IS NULL GROUP BY age_band ORDER BY age_band",
    "SELECT year(deceased_on), count(*) FROM population GROUP BY 1 ORDER BY 1 NULLS FIRST",
    "SELECT hukou_city, count(*) FROM population WHERE hukou_city <> '110000' "
    "AND registered_on BETWEEN DATE '2005-01-01' AND DATE '2015-12-31' GROUP BY hukou_city",
    "SELECT scheme, status, count(*), sum(monthly_amount), avg(monthly_amount), "
    "min(monthly_amount), max(monthly_amount) FROM social_insurance GROUP BY scheme, status",
    "SELECT count(*) FROM social_insurance WHERE scheme = 'pension' AND status = 'active' "
    "AND last_paid_on IS NULL",
    "SELECT sum(monthly_amount * 12) AS yearly FROM social_insurance WHERE status = 'active'",
    "SELECT month(enrolled_on) AS m, sum(monthly_amount) / count(*) AS mean FROM "
    "social_insurance GROUP BY m HAVING count(*) > 50 ORDER BY mean DESC, m",
    "SELECT hour(tapped_at) AS h, count(*) FROM transit_trips WHERE card_city <> '110000' "
    "GROUP BY h ORDER BY h",
    "SELECT mode, line, count(*), sum(fare), avg(fare) FROM transit_trips GROUP BY mode, line",
    "SELECT date_trunc('day', tapped_at) AS d, count(*) FROM transit_trips "
    "WHERE mode IN ('metro', 'rail') AND NOT (fare > 5) GROUP BY d ORDER BY d LIMIT 7",
    "SELECT date_trunc('week', tapped_at), min(tapped_at), max(tapped_at) FROM transit_trips "
    "GROUP BY 1",
    "SELECT count(*), count(person_id) FROM transit_trips WHERE person_id IS NULL OR fare < 1",
    "SELECT day(tapped_at), mode, sum(fare) FROM transit_trips GROUP BY 1, 2 "
    "ORDER BY 3 DESC, 1, 2 LIMIT 10 OFFSET 3",
    "SELECT card_city, count(*) FROM medical_visits WHERE card_city <> '110000' GROUP BY card_city",
    "SELECT icd10, department, sum(total_cost), sum(insurance_paid), "
    "sum(total_cost - insurance_paid) AS out_of_pocket FROM medical_visits "
    "GROUP BY icd10, department",
    "SELECT avg(insurance_paid / total_cost) FROM medical_visits WHERE total_cost > 0",
    "SELECT count(*) FROM medical_visits WHERE visited_on >= DATE '2025-06-01' "
    "AND total_cost >= 10000.5",
    "SELECT hospital_id, count(*) AS visits FROM medical_visits GROUP BY hospital_id "
    "HAVING sum(total_cost) > 100000 AND count(*) >= 10 ORDER BY visits DESC, hospital_id LIMIT 3",
    "SELECT -sum(fare) AS negative, sum(fare) % 7 AS remainder FROM transit_trips",
    "SELECT count(*) FROM transit_trips WHERE fare > 1000",
    "SELECT mode, count(*) FROM transit_trips WHERE fare > 1000 GROUP BY mode",
    "SELECT sum(fare), avg(fare), min(station) FROM transit_trips WHERE fare > 1000",
    "SELECT month(visited_on) AS m, count(*) FROM medical_visits GROUP BY m "
    "ORDER BY count(*) DESC, m",
    # Names match whatever their case; HAVING and ORDER BY may use output names.
    "SELECT count(*) FROM POPULATION",
    "SELECT SEX, Count(*) FROM Population WHERE Deceased_On IS NULL GROUP BY sex",
    "SELECT P.Sex, count(*) AS N FROM population AS p GROUP BY p.SEX ORDER BY n DESC",
    "SELECT sex AS s, count(*) AS n FROM population GROUP BY s HAVING n > 10 ORDER BY N",
    "SELECT year(birth_date) AS y, count(*) AS n FROM population GROUP BY y "
    "HAVING y > 1990 AND n >= 1 ORDER BY -y LIMIT 5",
    "SELECT mode, sum(fare) AS total FROM transit_trips GROUP BY mode "
    "HAVING total > 0 ORDER BY total / 2 DESC",
    "SELECT line AS mode, count(*) FROM transit_trips GROUP BY line, mode "
    "HAVING mode = 'metro' ORDER BY mode",
]


@pytest.mark.parametrize("sql", BATTERY)
def test_federated_answer_equals_central_duckdb(region, sql):
    answer = region.ask(sql)
    assert answer.complete
    assert_same_rows(answer.table.rows, region.central.execute(sql).fetchall(),
                     ordered="ORDER BY" in sql)


def test_column_names_follow_aliases_and_the_sql_text(region):
    answer = region.ask(
        "SELECT mode AS m, count(*), sum(fare) AS total FROM transit_trips GROUP BY m")
    assert answer.table.column_names == ["m", "count(*)", "total"]


@dataclass(frozen=True)
class Spec:
    """What the generated queries may use on one dataset."""

    keys: tuple[str, ...]
    numbers: tuple[str, ...]  # sortable without float ties: integers and decimals
    anything: tuple[str, ...]
    predicates: tuple[str, ...]


SPECS = {
    "transit_trips": Spec(
        keys=("mode", "line", "district_code", "card_city", "hour(tapped_at)",
              "date_trunc('day', tapped_at)", "fare // 2", "person_id IS NULL"),
        numbers=("fare", "fare * 2", "fare + 1.25", "fare - fare // 1", "hour(tapped_at)"),
        anything=("tapped_at", "station", "fare", "person_id", "card_id"),
        predicates=("fare > {d}", "fare <= {d}", "fare BETWEEN {d} AND {d2}",
                    "mode IN ('metro', 'bus')", "mode = 'rail'", "person_id IS NULL",
                    "person_id IS NOT NULL", "hour(tapped_at) >= {h}",
                    "tapped_at < TIMESTAMP '2026-09-{day:02d} 08:00:00'",
                    "card_city <> '110000'", "district_code NOT IN ('110101')",
                    "day(tapped_at) % 7 = {small}"),
    ),
    "medical_visits": Spec(
        keys=("card_city", "department", "icd10", "month(visited_on)", "hospital_id"),
        numbers=("total_cost", "insurance_paid", "total_cost - insurance_paid",
                 "total_cost * 0.1"),
        anything=("visited_on", "icd10", "total_cost", "visit_id"),
        predicates=("total_cost > {big}", "insurance_paid < {big}",
                    "visited_on >= DATE '2025-{month:02d}-01'", "icd10 IN ('I10', 'E11.9')",
                    "card_city = '120000'", "department <> 'general'",
                    "total_cost BETWEEN {d} AND {big}"),
    ),
    "population": Spec(
        keys=("sex", "district_code", "hukou_city", "year(birth_date) // 10",
              "deceased_on IS NULL", "date_diff('year', birth_date, DATE '2026-01-01') // 20"),
        numbers=("date_diff('day', birth_date, registered_on)", "year(birth_date)"),
        anything=("birth_date", "deceased_on", "name", "registered_on"),
        predicates=("sex = 'F'", "deceased_on IS NULL", "deceased_on IS NOT NULL",
                    "birth_date < DATE '19{small}5-06-01'", "district_code IN ('110101', "
                    "'120101')", "year(registered_on) BETWEEN 2005 AND 20{small}0"),
    ),
    "social_insurance": Spec(
        keys=("scheme", "status", "year(enrolled_on)", "last_paid_on IS NULL"),
        numbers=("monthly_amount", "monthly_amount * 12", "monthly_amount // 100"),
        anything=("enrolled_on", "last_paid_on", "monthly_amount", "person_id"),
        predicates=("monthly_amount > {big}", "status = 'active'", "scheme <> 'pension'",
                    "last_paid_on IS NULL", "enrolled_on < DATE '20{small}0-01-01'"),
    ),
}


def _fill(template: str, draw) -> str:
    return template.format(
        d=draw(st.decimals(min_value=0, max_value=10, places=2)),
        d2=draw(st.decimals(min_value=5, max_value=20, places=1)),
        big=draw(st.integers(min_value=0, max_value=60_000)),
        h=draw(st.integers(0, 23)), day=draw(st.integers(1, 28)),
        month=draw(st.integers(1, 12)), small=draw(st.integers(0, 6)),
    )


@st.composite
def predicates(draw, spec: Spec, depth: int = 2) -> str:
    if depth == 0 or draw(st.booleans()):
        return _fill(draw(st.sampled_from(spec.predicates)), draw)
    left, right = draw(predicates(spec, depth - 1)), draw(predicates(spec, depth - 1))
    shape = draw(st.sampled_from(["({} AND {})", "({} OR {})", "NOT ({})"]))
    return shape.format(left, right) if shape.count("{}") == 2 else shape.format(left)


@st.composite
def aggregates(draw, spec: Spec) -> tuple[str, bool]:
    """An aggregate, and whether it is safe to sort by (no float ties)."""
    kind = draw(st.sampled_from(["count(*)", "count", "sum", "avg", "min", "max"]))
    if kind == "count(*)":
        return kind, True
    if kind in ("sum", "avg"):
        return f"{kind}({draw(st.sampled_from(spec.numbers))})", kind == "sum"
    return f"{kind}({draw(st.sampled_from(spec.anything))})", True


@st.composite
def queries(draw) -> tuple[str, bool]:
    dataset = draw(st.sampled_from(sorted(SPECS)))
    spec = SPECS[dataset]
    keys = draw(st.lists(st.sampled_from(spec.keys), max_size=2, unique=True))
    chosen = draw(st.lists(aggregates(spec), min_size=1, max_size=4))
    select = keys + [a for a, _ in chosen]
    sql = f"SELECT {', '.join(select)} FROM {dataset}"
    if draw(st.booleans()):
        sql += f" WHERE {draw(predicates(spec))}"
    if keys:
        sql += f" GROUP BY {', '.join(str(i + 1) for i in range(len(keys)))}"
        if draw(st.booleans()):
            sql += f" HAVING count(*) > {draw(st.integers(0, 400))}"
    ordered = bool(keys) and draw(st.booleans())
    if ordered:
        sortable = [i + 1 for i in range(len(keys))] + [
            len(keys) + i + 1 for i, (_, safe) in enumerate(chosen) if safe]
        order = draw(st.permutations(sortable))
        # Every group key is in the ORDER BY, so the order is total and LIMIT is deterministic.
        order = [p for p in order if p > len(keys)][:1] + [p for p in order if p <= len(keys)]
        sql += " ORDER BY " + ", ".join(
            f"{p} {draw(st.sampled_from(['ASC', 'DESC']))} "
            f"{draw(st.sampled_from(['NULLS FIRST', 'NULLS LAST']))}" for p in order)
        if draw(st.booleans()):
            sql += f" LIMIT {draw(st.integers(0, 12))}"
            if draw(st.booleans()):
                sql += f" OFFSET {draw(st.integers(0, 5))}"
    return sql, ordered


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(generated=queries())
def test_generated_queries_match_central_duckdb(region, generated):
    sql, ordered = generated
    answer = region.ask(sql)
    assert answer.complete
    assert_same_rows(answer.table.rows, region.central.execute(sql).fetchall(), ordered)


@sparkkit.needs_spark
@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(generated=queries())
def test_generated_queries_with_a_city_on_spark_match_central_duckdb(spark_region, generated):
    sql, ordered = generated
    answer = spark_region.ask(sql)
    assert answer.complete, answer.outcomes
    assert_same_rows(answer.table.rows, spark_region.central.execute(sql).fetchall(), ordered)


# DuckDB's meaning at the edges: rows no generator writes, planted in some of the cities.
# A fare of 0 makes `fare / fare` NaN and `1e0 / fare` infinite. Line LX holds only NaN in
# beijing and only numbers in tianjin; dates and timestamps lie before year 1 and after 9999.
def _trip(city: str, card: str, tapped_at: str, mode: str, line: str, fare: str) -> str:
    return (f"INSERT INTO transit_trips VALUES ('{card}', NULL, TIMESTAMP '{tapped_at}', "
            f"'{mode}', '{line}', 'S0', '110101', {fare}, '{city}')")


def _person(number: int, born: str, registered: str, deceased: str = "NULL") -> str:
    return (f"INSERT INTO population VALUES ('{number:017d}X', 'edge{number}', 'F', "
            f"DATE '{born}', '110101', '110000', DATE '{registered}', {deceased})")


EDGE_ROWS = {
    "beijing": [
        _trip("110000", "Z1", "12000-01-01 10:00:00", "metro", "LX", "0.00"),
        _trip("110000", "Z2", "0044-03-15 (BC) 10:00:00.5", "metro", "L1", "0.00"),
        _person(1, "0044-03-15 (BC)", "12000-01-01"),
        _person(2, "1990-05-01", "2010-01-01", "DATE '10000-01-01'"),
    ],
    "tianjin": [
        _trip("120000", "Z3", "13000-01-01 10:00:00.000123", "bus", "LX", "1.00"),
        _trip("120000", "Z4", "0100-01-01 (BC) 00:00:00", "bus", "L2", "0.00"),
        _person(3, "0100-03-15 (BC)", "13000-01-01", "DATE '0001-12-31 (BC)'"),
    ],
    "langfang": [],
}

EDGE_BATTERY = [
    "SELECT fare / fare AS r, count(*) FROM transit_trips GROUP BY r",
    "SELECT fare / fare AS r, mode, count(*) FROM transit_trips GROUP BY r, mode "
    "HAVING count(*) > 0 ORDER BY r DESC, mode",
    "SELECT line, min(fare / fare), max(fare / fare), max(1e0 / fare), min(-1e0 / fare), "
    "sum(fare / fare), avg(fare / fare) FROM transit_trips GROUP BY line",
    "SELECT mode, max(fare / fare) AS m, count(*) FROM transit_trips GROUP BY mode "
    "ORDER BY m, mode",
    "SELECT mode, max(fare / fare) AS m FROM transit_trips GROUP BY mode "
    "ORDER BY m DESC, mode LIMIT 2",
    "SELECT min(birth_date), max(birth_date), min(registered_on), max(registered_on), "
    "min(deceased_on), max(deceased_on) FROM population",
    "SELECT birth_date, count(*) FROM population WHERE birth_date < DATE '1000-01-01' "
    "GROUP BY 1 ORDER BY 1",
    "SELECT registered_on, count(*) FROM population GROUP BY 1 ORDER BY 1 DESC LIMIT 4",
    "SELECT registered_on AS r, count(*) FROM population GROUP BY r HAVING count(*) >= 1 "
    "ORDER BY r DESC LIMIT 4",
    "SELECT sex, max(registered_on) - min(birth_date), min(birth_date) + 1 FROM population "
    "GROUP BY sex",
    "SELECT year(birth_date) AS y, count(*) FROM population WHERE birth_date < DATE "
    "'0001-01-01' GROUP BY y ORDER BY y",
    "SELECT min(tapped_at), max(tapped_at) FROM transit_trips",
    "SELECT mode, min(tapped_at), max(tapped_at) FROM transit_trips GROUP BY mode",
    "SELECT date_trunc('day', tapped_at) AS d, count(*) FROM transit_trips GROUP BY d "
    "ORDER BY d DESC LIMIT 3",
    "SELECT date_trunc('year', tapped_at) AS d, count(*) FROM transit_trips GROUP BY d "
    "HAVING count(*) >= 1 ORDER BY d LIMIT 3",
    "SELECT mode, max(tapped_at) AS last FROM transit_trips GROUP BY mode "
    "HAVING max(tapped_at) > TIMESTAMP '2026-01-01 00:00:00' ORDER BY last DESC",
    # Literals of any year DuckDB holds, written as DuckDB reads them.
    "SELECT count(*) FROM population WHERE birth_date < DATE '0050-01-01 (BC)'",
    "SELECT count(*), min(birth_date) FROM population WHERE registered_on >= DATE '12500-1-1' "
    "OR deceased_on BETWEEN DATE '0001-01-01 (BC)' AND DATE 'infinity'",
    "SELECT mode, count(*) FROM transit_trips WHERE tapped_at > TIMESTAMP '12500-01-01 00:00:00' "
    "OR tapped_at < TIMESTAMP '0001-01-01 (BC) 00:00:00' GROUP BY mode",
    "SELECT max(registered_on) AS last FROM population "
    "HAVING max(registered_on) > DATE '12999-12-31'",
    "SELECT count(*) FROM population WHERE birth_date < DATE '0001-01-01' "
    "OR birth_date = DATE '0999-12-31'",
    # date_diff counts boundaries before 1970 and before year 1 as after them.
    *(f"SELECT date_diff('{part}', birth_date, DATE '1960-03-01') AS n, count(*) "
      "FROM population GROUP BY n ORDER BY n LIMIT 4"
      for part in ("year", "quarter", "month", "week", "day", "hour")),
    *(f"SELECT date_diff('{part}', tapped_at, TIMESTAMP '1969-12-31 23:30:00') AS n, "
      f"date_diff('{part}', TIMESTAMP '1969-12-31 22:59:59.5', tapped_at), count(*) "
      "FROM transit_trips GROUP BY 1, 2 ORDER BY 1, 2 LIMIT 4"
      for part in ("year", "quarter", "month", "week", "day", "hour")),
    # NaN, ±infinity and -0.0 as keys, in min/max and from a division.
    "SELECT -(fare / fare) AS k, fare * -1e0 AS z, count(*) FROM transit_trips "
    "GROUP BY k, z ORDER BY k, z",
    "SELECT 1e0 / (fare * -1e0) AS k, min(fare * -1e0), max(1e0 / fare), count(*) "
    "FROM transit_trips WHERE fare = 0 GROUP BY k",
    "SELECT line, count(*) FROM transit_trips WHERE fare / fare <> fare / fare OR "
    "1e0 / fare > 1e308 GROUP BY line",
    # DECIMAL sums stay exact.
    "SELECT sum(fare), sum(fare * 3), sum(-fare), sum(fare * 0.01) FROM transit_trips",
    "SELECT sum(total_cost), sum(total_cost - insurance_paid) FROM medical_visits",
]


@pytest.fixture(scope="module", params=sparkkit.STORES)
def edge_region(request, tmp_path_factory):
    """With "spark", tianjin (which holds edge rows) is served from Spark."""
    running = start_region(tmp_path_factory.mktemp("edge_region"), tuple(EDGE_ROWS), rows=150,
                           seed=7, extra_rows=EDGE_ROWS,
                           spark_cities=sparkkit.on_spark(request.param, "tianjin"))
    yield running
    running.stop()


@pytest.mark.parametrize("sql", EDGE_BATTERY)
def test_edge_values_merge_as_in_central_duckdb(edge_region, sql):
    answer = edge_region.ask(sql)
    assert answer.complete
    assert_same_rows(answer.table.rows, edge_region.central.execute(sql).fetchall(),
                     ordered="ORDER BY" in sql)


_EDGE_DOUBLES = st.one_of(st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0, 1.0]),
                          st.floats(allow_nan=False, width=32), st.none())


@settings(max_examples=60, deadline=None)
@given(cities=st.lists(st.lists(st.tuples(_EDGE_DOUBLES, _EDGE_DOUBLES), max_size=6),
                       min_size=1, max_size=3))
def test_nan_and_infinity_merge_as_in_central_duckdb(cities):
    """NaN is one group key and the greatest value, whichever city holds it."""
    plan = query_pb2.AggregatePlan(aggregates=[
        query_pb2.Aggregate(function=A.AGGREGATE_FUNCTION_MIN),
        query_pb2.Aggregate(function=A.AGGREGATE_FUNCTION_MAX)])
    connection = duckdb.connect()
    connection.execute("CREATE TABLE rows (city INTEGER, k DOUBLE, v DOUBLE)")
    answers = []
    for number, rows in enumerate(cities):
        if rows:
            connection.executemany("INSERT INTO rows VALUES (?, ?, ?)",
                                   [(number, k, v) for k, v in rows])
        partials = connection.execute(
            "SELECT k, count(v), min(v), max(v) FROM rows WHERE city = ? GROUP BY k",
            [number]).fetchall()
        answers.append([query_pb2.PartialGroup(keys=[to_value(k)], aggregates=[
            query_pb2.PartialAggregate(count=n, min=to_value(low)),
            query_pb2.PartialAggregate(count=n, max=to_value(high))])
            for k, n, low, high in partials])
    merged = merge_partials(plan, answers)
    federated = [(*key, *values) for key, values in zip(merged.keys, merged.aggregates,
                                                       strict=True)]
    central = connection.execute("SELECT k, min(v), max(v) FROM rows GROUP BY k").fetchall()
    assert_same_rows(federated, central, ordered=False)


@settings(max_examples=200, deadline=None)
@given(days=st.lists(st.integers(-2_000_000, 3_000_000), min_size=2, max_size=5),
       micros=st.lists(st.integers(-(2**62), 2**62), min_size=2, max_size=5))
def test_dates_and_timestamps_of_any_year_print_and_order_as_in_duckdb(days, micros):
    connection = duckdb.connect()
    dates = [date_from_days(n) for n in days]
    timestamps = [timestamp_from_micros(n) for n in micros]
    far = [(v, n, "DATE '1970-01-01' + CAST(? AS INTEGER)") for v, n in zip(dates, days,
                                                                           strict=True)]
    far += [(v, n, "make_timestamp(?)") for v, n in zip(timestamps, micros, strict=True)]
    for value, number, sql in far:
        if isinstance(value, FarDate | FarTimestamp):  # Python's own types print themselves
            (text,) = connection.execute(f"SELECT CAST({sql} AS VARCHAR)", [number]).fetchone()
            assert str(value) == text
    assert sorted(dates) == [date_from_days(n) for n in sorted(days)]
    assert sorted(timestamps) == [timestamp_from_micros(n) for n in sorted(micros)]


def test_infinite_dates_and_timestamps_keep_their_meaning():
    assert str(date_from_days(2**31 - 1)) == "infinity"
    assert str(timestamp_from_micros(-(2**63 - 1))) == "-infinity"
    assert from_value(to_value(date_from_days(-(2**31 - 1)))) == date_from_days(-(2**31 - 1))
    assert date_from_days(-(2**31 - 1)) < dt.date(1, 1, 1) < date_from_days(2**31 - 1)


# DuckDB answers these with an INTERVAL (a Python timedelta); no `Value` carries one, so they
# are refused before any city is asked, with a message that says what to write instead.
INTERVAL_QUESTIONS = [
    "SELECT max(tapped_at) - min(tapped_at) FROM transit_trips",
    "SELECT mode, max(tapped_at - tapped_at) FROM transit_trips GROUP BY mode",
    "SELECT avg(date_trunc('day', tapped_at) - date_trunc('hour', tapped_at)) "
    "FROM transit_trips",
    "SELECT count(*) FROM transit_trips WHERE tapped_at - DATE '2026-09-01' > INTERVAL 1 DAY",
    "SELECT count(*) FROM transit_trips "
    "WHERE tapped_at > TIMESTAMP '2026-09-02 00:00:00' - INTERVAL '1 day'",
]


@pytest.mark.parametrize("sql", INTERVAL_QUESTIONS)
def test_intervals_are_refused_at_the_plan_with_what_to_write_instead(edge_region, sql):
    edge_region.central.execute(sql).fetchall()  # a question DuckDB answers
    with pytest.raises(InvalidQuery, match=r"INTERVAL.*date_diff") as refused:
        edge_region.ask(sql)
    assert refused.value.status == grpc.StatusCode.INVALID_ARGUMENT


def test_a_node_refuses_an_interval_in_a_plan_sent_to_it_directly(edge_region):
    difference = query_pb2.Expression(call=query_pb2.Call(
        function=query_pb2.Function.FUNCTION_SUBTRACT,
        arguments=[query_pb2.Expression(column="tapped_at")] * 2))
    plan = query_pb2.AggregatePlan(dataset="transit_trips", aggregates=[
        query_pb2.Aggregate(function=A.AGGREGATE_FUNCTION_MAX, argument=difference)])
    with pytest.raises(grpc.RpcError) as refused:
        aggregate(edge_region, "beijing", plan.SerializeToString())
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "INTERVAL" in refused.value.details()
