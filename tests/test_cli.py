"""`cityfed query` as a person or a script uses it: tables, JSON, CSV, exit codes."""

from __future__ import annotations

import io
import json
import math
import re

import pytest

from cli.main import main
from federation.services.gateway import start_gateway
from tests.regionkit import AUDITOR, PURPOSE, _credentials, assert_same_rows, start_region

SQL = "SELECT mode, count(*) AS n, sum(fare) AS total FROM transit_trips GROUP BY mode ORDER BY n"


@pytest.fixture(scope="module")
def region_file(region):
    """What --region takes: the region folder."""
    return region.directory


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    argv = [*argv, "--as", AUDITOR] if argv and argv[0] == "query" and "--as" not in argv \
        else list(argv)
    if argv and argv[0] == "query" and "--purpose" not in argv:
        argv += ["--purpose", PURPOSE]
    code = main(argv, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_query_prints_a_table_and_every_city(region_file):
    code, out, _ = run("query", SQL, "--region", str(region_file))
    assert code == 0
    assert "mode" in out and "total" in out
    assert "3 of 3 cities answered" in out
    for city in ("beijing", "tianjin", "langfang"):
        assert city in out


def test_query_json_is_exact_and_lists_the_cities(region, region_file):
    code, out, _ = run("query", SQL, "--region", str(region_file), "--json")
    assert code == 0
    answer = json.loads(out)
    assert answer["columns"] == ["mode", "n", "total"] and answer["complete"]
    assert {c["city"]: c["status"] for c in answer["cities"]} == {
        "beijing": "answered", "tianjin": "answered", "langfang": "answered"}
    expected = [(m, n, str(total)) for m, n, total in region.central.execute(SQL).fetchall()]
    assert_same_rows([tuple(r) for r in answer["rows"]], expected, ordered=True)


def test_query_csv(region_file):
    code, out, err = run("query", SQL, "--region", str(region_file), "--csv")
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0] == "mode,n,total" and len(lines) == 4
    assert "3 of 3 cities answered" in err


def test_a_down_city_is_shown_and_require_all_exits_3(tmp_path):
    running = start_region(tmp_path, ("beijing", "tianjin"), rows=100, extra_cities=("baoding",))
    try:
        code, out, _ = run("query", SQL, "--region", str(tmp_path))
        assert code == 0 and "baoding" in out and "UNREACHABLE" in out
        code, _, err = run("query", SQL, "--region", str(tmp_path), "--require-all")
        assert code == 3 and "baoding unreachable" in err
    finally:
        running.stop()


def test_an_unregistered_purpose_or_unknown_member_is_refused(region_file):
    code, _, err = run("query", SQL, "--region", str(region_file), "--purpose", "curiosity")
    assert code == 1 and "not registered" in err
    code, _, err = run("query", SQL, "--region", str(region_file), "--as", "nobody")
    assert code == 1 and "nobody" in err


def test_bad_sql_exits_1_with_a_message_not_a_traceback(region_file):
    code, out, err = run("query", "SELECT name FROM population", "--region", str(region_file))
    assert code == 1 and out == ""
    assert err.startswith("error: INVALID_ARGUMENT: column 'name'")
    assert "Traceback" not in err


def test_a_missing_region_folder_is_named(tmp_path):
    code, _, err = run("query", SQL, "--region", str(tmp_path / "nowhere"))
    assert code == 1 and "nowhere" in err


def test_query_through_the_gateway(region):
    manifest, identity = _credentials(region.directory, AUDITOR)
    gateway = start_gateway(manifest, identity, "127.0.0.1:0")
    try:
        address = f"127.0.0.1:{gateway.port}"
        code, out, _ = run("query", SQL, "--region", str(region.directory), "--gateway", address,
                           "--json")
        assert code == 0
        assert json.loads(out)["complete"]
        code, _, err = run("query", "SELECT * FROM x", "--region", str(region.directory),
                           "--gateway", address)
        assert code == 1 and "INVALID_ARGUMENT" in err
    finally:
        gateway.stop(grace=None)


def _strict_json(text: str):
    def refuse(constant: str):
        raise AssertionError(f"{constant} is not JSON")
    return json.loads(text, parse_constant=refuse)


def test_query_json_is_strict_nan_and_infinities_are_named_strings(region, region_file):
    sql = ("SELECT sum(fare) / 0 AS up, -sum(fare) / 0 AS down, (sum(fare) - sum(fare)) / 0 AS "
           "neither, max(fare) FROM transit_trips")
    up, down, neither, _ = region.central.execute(sql).fetchone()
    assert (up, down, math.isnan(neither)) == (math.inf, -math.inf, True)
    code, out, _ = run("query", sql, "--region", str(region_file), "--json")
    assert code == 0
    (row,) = _strict_json(out)["rows"]
    assert row[:3] == ["Infinity", "-Infinity", "NaN"]


def test_query_exits_3_when_no_city_answered(tmp_path):
    running = start_region(tmp_path, ("beijing",), rows=10, extra_cities=("baoding",))
    try:
        code, out, err = run("query", SQL, "--region", str(tmp_path), "--cities", "baoding")
        assert code == 3 and "UNREACHABLE" in out and "no city answered" in err
        code, out, err = run("query", SQL, "--region", str(tmp_path), "--cities", "baoding",
                             "--json")
        assert code == 3 and _strict_json(out)["cities"][0]["status"] == "unreachable"
    finally:
        running.stop()


# DuckDB's words and cityfed's own internals: the merge's column names (a0, k0), DuckDB's hints
# ("Use TRY(...)"), its parser's ("Only SELECT statements can be serialized to json!").
INTERNALS = re.compile(r"\b[ak]\d+\b|TRY|serialized|json_serialize|CAST\(|HUGEINT\)|Error:|"
                       r"Traceback|merged_group")
FAILING = [
    "SELECT sum(fare) // 0 FROM transit_trips",
    "SELECT mode, count(*) FROM transit_trips GROUP BY mode HAVING sum(fare) % 0 > 1",
    "SELECT count(*) FROM transit_trips WHERE fare // 0 > 1",
    "SELECT count(*) * 9223372036854775807 * 9223372036854775807 FROM transit_trips",
    "SELECT max(birth_date) + 2147483647 FROM population",
    "SELECT max(tapped_at) - min(tapped_at) FROM transit_trips",
    "EXPLAIN SELECT count(*) FROM transit_trips",
    "INSERT INTO population VALUES (1)",
    "SELECT count(*) FROM transit_trips; DROP TABLE transit_trips",
]


@pytest.mark.parametrize("sql", FAILING)
def test_a_failing_question_says_why_without_internals(region, region_file, sql):
    manifest, identity = _credentials(region.directory, AUDITOR)
    gateway = start_gateway(manifest, identity, "127.0.0.1:0")
    try:
        for through in ([], ["--gateway", f"127.0.0.1:{gateway.port}"]):
            code, out, err = run("query", sql, "--region", str(region_file), *through)
            assert code == 1 and out == ""
            assert err.startswith("error: INVALID_ARGUMENT: ")
            assert not INTERNALS.search(err), err
    finally:
        gateway.stop(grace=None)
