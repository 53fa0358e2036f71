"""The SQL subset: what it accepts becomes the right plan; what it refuses names the part."""

from __future__ import annotations

import pytest
from cityfed.v1 import query_pb2

from federation.errors import InvalidQuery, TooLarge
from federation.query.sql import MAX_SQL_CHARS, parse_query

F = query_pb2.Function
A = query_pb2.AggregateFunction


def test_group_keys_aggregates_and_post_merge_parts_are_separated():
    query = parse_query(
        "SELECT district_code AS d, count(*) AS n, avg(fare) FROM transit_trips "
        "WHERE mode IN ('metro', 'bus') GROUP BY d HAVING count(*) > 10 "
        "ORDER BY n DESC NULLS FIRST LIMIT 5 OFFSET 2"
    )
    plan = query.plan
    assert plan.dataset == "transit_trips"
    assert [k.column for k in plan.group_by] == ["district_code"]
    assert [a.function for a in plan.aggregates] == [A.AGGREGATE_FUNCTION_COUNT_STAR,
                                                     A.AGGREGATE_FUNCTION_AVG]
    assert plan.filter.call.function == F.FUNCTION_IN
    assert [c.name for c in query.columns] == ["d", "n", "avg(fare)"]
    assert query.having.call.arguments[0].aggregate == 0
    assert query.order_by[0].descending and query.order_by[0].nulls_first
    assert (query.limit, query.offset) == (5, 2)


def test_the_same_aggregate_is_computed_once():
    query = parse_query("SELECT count(*), count(*) + 1 FROM population HAVING count(*) > 0")
    assert len(query.plan.aggregates) == 1


def test_group_by_position_and_output_name_resolve_to_the_select_expression():
    by_position = parse_query("SELECT year(birth_date), count(*) FROM population GROUP BY 1")
    by_name = parse_query("SELECT year(birth_date) AS y, count(*) FROM population GROUP BY y")
    assert by_position.plan.group_by == by_name.plan.group_by
    assert by_position.plan.group_by[0].call.function == F.FUNCTION_YEAR


def test_literals_keep_their_sql_types():
    query = parse_query(
        "SELECT count(*) FROM social_insurance WHERE monthly_amount > 1500.50 "
        "AND enrolled_on < DATE '2001-02-03' AND last_paid_on IS NOT NULL AND 1e2 > 3"
    )
    values = [a.call.arguments[1].literal for a in query.plan.filter.call.arguments[:2]]
    assert values[0].decimal_value == "1500.50"
    assert values[1].WhichOneof("kind") == "date_value"


def test_not_in_and_not_between_become_their_own_functions():
    query = parse_query("SELECT count(*) FROM population WHERE sex NOT IN ('F') "
                        "AND birth_date NOT BETWEEN DATE '1950-01-01' AND DATE '1960-01-01'")
    functions = [a.call.function for a in query.plan.filter.call.arguments]
    assert functions == [F.FUNCTION_NOT_IN, F.FUNCTION_NOT_BETWEEN]


@pytest.mark.parametrize(("sql", "says"), [
    ("SELECT * FROM population", "SELECT *"),
    ("SELECT name FROM population", "must appear in GROUP BY"),
    ("SELECT count(DISTINCT sex) FROM population", "DISTINCT"),
    ("SELECT count(*) FROM population p JOIN transit_trips t ON true", "joins"),
    ("SELECT count(*) FROM (SELECT 1)", "subqueries"),
    ("SELECT count(*) FROM read_csv('/etc/passwd')", "TABLE FUNCTION"),
    ("SELECT count(*) FROM nowhere", "unknown dataset 'nowhere'"),
    ("SELECT count(*) FROM population WHERE shoe_size > 3", "unknown column 'shoe_size'"),
    ("SELECT upper(name), count(*) FROM population GROUP BY 1", "upper() is not supported"),
    ("SELECT count(*) FROM population WHERE CAST(sex AS INT) = 1", "CAST is not supported"),
    ("SELECT count(*) FROM population WHERE sum(1) > 1", "not allowed in WHERE"),
    ("WITH x AS (SELECT 1) SELECT count(*) FROM population", "WITH"),
    ("SELECT DISTINCT sex FROM population GROUP BY sex", "DISTINCT"),
    ("SELECT count(*) FROM population; SELECT 1", "exactly one SELECT"),
    ("DELETE FROM population", "syntax error"),
    ("SELEKT 1", "syntax error"),
    ("SELECT count(*) FROM population LIMIT count(*)", "LIMIT must be"),
    # DuckDB reads these as 10 percent of the rows, not 10 rows.
    ("SELECT sex, count(*) FROM population GROUP BY sex LIMIT 10%", "percentage"),
    ("SELECT sex, count(*) FROM population GROUP BY sex LIMIT 10 PERCENT", "percentage"),
    ("SELECT count(*) FROM population ORDER BY 3", "position 3"),
    ("SELECT sex, count(*) FROM population GROUP BY ALL", "GROUP BY ALL"),
    ("SELECT count(*) FROM population WHERE date_trunc('decade', birth_date) IS NULL",
     "date part must be"),
    ("SELECT count(*) FROM population WHERE birth_date > DATE 'yesterday'", "not a valid DATE"),
    ("SELECT count(*) FROM population WHERE birth_date > DATE '2020-01-01' - INTERVAL 1 DAY",
     "INTERVAL values are not supported"),
    ("SELECT 1 FROM population", "at least one aggregate"),
])
def test_unsupported_sql_is_refused_with_a_message_naming_the_part(sql, says):
    with pytest.raises(InvalidQuery, match=None) as refused:
        parse_query(sql)
    assert says in str(refused.value)


def test_oversized_sql_is_refused_as_too_large():
    with pytest.raises(TooLarge):
        parse_query("SELECT count(*) FROM population WHERE sex IN (" +
                    ", ".join("'F'" for _ in range(MAX_SQL_CHARS // 4)) + ")")


@pytest.mark.parametrize("depth", [60, 300, 900])
def test_deeply_nested_expressions_are_refused_as_too_large(depth):
    nested = "(" * depth + "fare" + " + 1)" * depth
    with pytest.raises(TooLarge):
        parse_query(f"SELECT sum({nested}) FROM transit_trips")


def test_names_match_whatever_their_case_as_in_duckdb():
    lower = parse_query("SELECT sex, count(*) FROM population AS p WHERE p.deceased_on IS NULL "
                        "GROUP BY sex")
    upper = parse_query("SELECT SEX, COUNT(*) FROM POPULATION AS P WHERE p.Deceased_On IS NULL "
                        "GROUP BY Sex")
    assert upper.plan == lower.plan
    assert upper.columns[0].name == "sex"  # a column is named as the dataset names it


def test_having_and_order_by_may_use_output_names():
    query = parse_query("SELECT sex AS s, count(*) AS n FROM population GROUP BY s "
                        "HAVING N > 10 ORDER BY -n")
    assert query.having.call.arguments[0].aggregate == 0
    assert query.order_by[0].expression.call.arguments[0].aggregate == 0


def test_a_name_both_column_and_output_means_the_column_in_having_the_output_in_order_by():
    query = parse_query("SELECT line AS mode, count(*) FROM transit_trips GROUP BY line, mode "
                        "HAVING mode = 'metro' ORDER BY mode")
    assert [k.column for k in query.plan.group_by] == ["line", "mode"]
    assert query.having.call.arguments[0].group_key == 1
    assert query.order_by[0].expression.group_key == 0


def test_date_and_timestamp_literals_mean_what_duckdb_reads_in_any_year():
    def literal(sql_literal: str) -> query_pb2.Value:
        query = parse_query(f"SELECT count(*) FROM transit_trips WHERE tapped_at > {sql_literal}"
                            if sql_literal.startswith("TIMESTAMP") else
                            f"SELECT count(*) FROM population WHERE birth_date > {sql_literal}")
        return query.plan.filter.call.arguments[1].literal

    assert literal("DATE '0044-03-15 (BC)'").date_value == -735_160
    assert literal("DATE '2020-1-1'").date_value == 18_262
    assert literal("DATE 'infinity'").date_value == 2**31 - 1
    assert literal("TIMESTAMP '12000-01-01 10:00:00'").timestamp_value == 316_516_240_800_000_000
