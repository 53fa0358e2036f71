"""`cityfed query` as a person or a script uses it: tables, JSON, CSV, exit codes."""

from __future__ import annotations

import io
import json

import pytest

from federation.gateway import start_gateway
from federation.members import region_toml
from node.cli import main
from tests.regionkit import assert_same_rows

SQL = "SELECT mode, count(*) AS n, sum(fare) AS total FROM transit_trips GROUP BY mode ORDER BY n"


@pytest.fixture(scope="module")
def region_file(region, tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "region.toml"
    path.write_text(region_toml("test", list(region.region.members)))
    return path


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
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


def test_a_down_city_is_shown_and_require_all_exits_3(region, tmp_path):
    members = [*region.region.members]
    members.append(type(members[0])(id="baoding", endpoint="127.0.0.1:1"))
    path = tmp_path / "region.toml"
    path.write_text(region_toml("test", members))
    code, out, _ = run("query", SQL, "--region", str(path))
    assert code == 0 and "baoding" in out and "UNREACHABLE" in out
    code, _, err = run("query", SQL, "--region", str(path), "--require-all")
    assert code == 3 and "baoding unreachable" in err


def test_bad_sql_exits_1_with_a_message_not_a_traceback(region_file):
    code, out, err = run("query", "SELECT name FROM population", "--region", str(region_file))
    assert code == 1 and out == ""
    assert err.startswith("error: INVALID_ARGUMENT: column 'name'")
    assert "Traceback" not in err


def test_a_missing_region_file_is_named(tmp_path):
    code, _, err = run("query", SQL, "--region", str(tmp_path / "none.toml"))
    assert code == 1 and "none.toml" in err


def test_query_through_the_gateway(region):
    gateway = start_gateway(region.region, "127.0.0.1:0")
    try:
        code, out, _ = run("query", SQL, "--gateway", f"127.0.0.1:{gateway.port}", "--json")
        assert code == 0
        assert json.loads(out)["complete"]
        code, _, err = run("query", "SELECT * FROM x", "--gateway", f"127.0.0.1:{gateway.port}")
        assert code == 1 and "INVALID_ARGUMENT" in err
    finally:
        gateway.stop(grace=None)
