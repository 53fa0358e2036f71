"""Nothing a caller sends can make a value appear in an error or a log.

A city holds canary rows (a distinctive name, person_id, pension amount, diagnosis code, birth
date), loaded through the node's admin Ingest like any city's data, and nothing else, so any
error quoting a row's value quotes a canary. A member with a ROW-level grant and one with an
AGGREGATE-level grant then ask a battery of hostile questions, each built so that DuckDB's own
error text would quote the row it fails on (a string used as a boolean or compared with a
number, an overflow with each sensitive column, a division by zero built from a column
difference, date arithmetic out of range, a huge decimal literal, deeply nested arithmetic),
straight to the node as plan bytes no checker has seen, through the coordinator and through the
gateway. No answer, status message or status detail, audit record or log line (the nodes run in
this process with INFO logging, as `-v` would) may contain a canary or DuckDB's error text.
"""

from __future__ import annotations

import csv
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import grpc
import pytest
from cityfed.v1 import admin_pb2, admin_pb2_grpc, federation_pb2, federation_pb2_grpc
from grpc_status import rpc_status

from federation.coordination.coordinator import Coordinator
from federation.errors import CityfedError
from federation.query.datasets import DATASETS
from federation.query.sql import _QueryBuilder, parse_tree
from federation.query.values import from_value
from federation.services.gateway import start_gateway
from federation.synthetic.local_region import init_trusted_region
from node.ingest import IngestMode
from node.stores.duckdb import DuckDBStore
from tests import regionkit, sparkkit
from tests.regionkit import PURPOSE, RunningRegion, build_city_store, open_policy, start_nodes

CANARY_CITY = "tianjin"  # holds the canary rows, and only them
OTHER_CITY = "beijing"  # ordinary generated rows, so that the coordinator merges two cities
ROW_READER = "row-reader"  # may see rows of every column
STATISTICIAN = "statistician"  # may use every column, at the aggregate level only
MEMBERS = (ROW_READER, STATISTICIAN)

PERSON_ID = "120104196602281357"
SPOUSE_ID = "130602190307071234"
CANARY_ROWS = {
    "population": [PERSON_ID, "Xanthippe Canary", "F", "1903-03-17", "120104", "120000",
                   "2001-01-01", ""],
    "social_insurance": [PERSON_ID, "pension", "active", "1999-09-09", "98765.43", "2025-01-01"],
    "medical_visits": ["VCANARY1", PERSON_ID, "120000", "2025-03-03", "HCANARY", "general",
                       "T66.X9", "87654.32", "76543.21"],
    "transit_trips": ["CCANARY7", PERSON_ID, "2026-09-09 09:09:09", "metro", "L1",
                      "Canary Wharf", "120104", "7.77", "120000"],
    "marriages": ["JCANARY5", PERSON_ID, SPOUSE_ID, "1923-07-07", "", "120000"],
}
# Each value as DuckDB may print it: DECIMALs also as their unscaled integer (98765.43 is
# "9876543" in "Overflow in multiplication of DECIMAL(38) (9876543 * …)").
CANARIES = ("Xanthippe", PERSON_ID, "0219660228", "1903-03-17", "98765.43", "9876543",
            "87654.32", "8765432", "76543.21", "7654321", "T66.X9", "VCANARY1", "HCANARY",
            "CCANARY7", "Canary Wharf", "JCANARY5", SPOUSE_ID, "1923-07-07")
# DuckDB's own error text, which quotes operands, never reaches a caller or a log.
DUCKDB_TEXT = re.compile(r"Conversion Error|Out of Range Error|Invalid Input Error|Binder Error|"
                         r"Could not convert|Casting value|Overflow in|Division by zero in "
                         r"expression|LINE 1:")

HUGE = "9" * 38
TINY = "0." + "0" * 33 + "1"  # DECIMAL(35,34): comparing makes DuckDB cast amounts to it
NESTED = "monthly_amount" + " * 10" * 30

HOSTILE = [
    # A string used as a boolean, or compared with a number or a date.
    "SELECT count(*) FROM population WHERE name",
    "SELECT count(*) FROM population WHERE NOT person_id",
    "SELECT count(*) FROM population WHERE sex = 'F' AND name",
    "SELECT count(*) FROM population WHERE person_id = 1",
    "SELECT count(*) FROM population WHERE name > 0.5",
    "SELECT count(*) FROM population WHERE person_id IN (1, 2)",
    "SELECT count(*) FROM population WHERE person_id BETWEEN 1 AND 2",
    "SELECT count(*) FROM population WHERE birth_date = name",
    "SELECT count(*) FROM population WHERE birth_date > person_id",
    "SELECT count(*) FROM population WHERE year(birth_date) = name",
    "SELECT sum(person_id + 1) FROM population",
    "SELECT sum(person_id * 2) FROM population",
    "SELECT count(*) FROM medical_visits WHERE icd10",
    "SELECT count(*) FROM medical_visits WHERE icd10 = 1",
    "SELECT count(*) FROM medical_visits WHERE visited_on = icd10",
    "SELECT count(*) FROM medical_visits WHERE total_cost = hospital_id",
    "SELECT count(*) FROM transit_trips WHERE card_id = 7",
    "SELECT count(*) FROM transit_trips WHERE tapped_at = station",
    "SELECT count(*) FROM social_insurance WHERE monthly_amount = person_id",
    "SELECT count(*) FROM marriages WHERE registration_id = 5",
    "SELECT count(*) FROM marriages WHERE registered_on = spouse2_id",
    "SELECT sum(person_id) FROM social_insurance",
    "SELECT avg(name) FROM population",
    # Overflow in multiplication and addition, with each sensitive column.
    f"SELECT sum(monthly_amount * {HUGE}) FROM social_insurance",
    f"SELECT sum(monthly_amount + {HUGE[:36]}.99) FROM social_insurance",
    "SELECT sum(monthly_amount * monthly_amount * monthly_amount * monthly_amount) "
    "FROM social_insurance",
    f"SELECT sum(total_cost * {HUGE}) FROM medical_visits",
    f"SELECT sum(insurance_paid * {HUGE}) FROM medical_visits",
    f"SELECT sum(total_cost + {HUGE[:36]}.99) FROM medical_visits",
    f"SELECT count(*) FROM medical_visits WHERE insurance_paid * {HUGE} > 0",
    "SELECT sum(year(birth_date) * 2147483647 * 2147483647 * 2147483647) FROM population",
    "SELECT count(*) FROM population WHERE "
    "date_diff('day', birth_date, registered_on) * 9223372036854775807 > 0",
    # A huge decimal literal, and deeply nested arithmetic.
    f"SELECT count(*) FROM social_insurance WHERE monthly_amount = {TINY}",
    f"SELECT count(*) FROM medical_visits WHERE total_cost > {TINY}",
    f"SELECT sum({NESTED}) FROM social_insurance",
    f"SELECT count(*) FROM social_insurance WHERE {NESTED} > 0",
    # Integer division by zero built from a column difference.
    "SELECT sum(1 // (year(birth_date) - year(birth_date))) FROM population",
    "SELECT sum(monthly_amount % (monthly_amount - monthly_amount)) FROM social_insurance",
    "SELECT count(*) FROM social_insurance WHERE monthly_amount // (monthly_amount - 98765.43) "
    "> 0",
    # Date arithmetic out of range.
    "SELECT count(*) FROM population WHERE birth_date + 2147483647 > DATE '2000-01-01'",
    "SELECT count(*) FROM population WHERE registered_on + 2147483647 > DATE '2000-01-01'",
    "SELECT date_trunc('day', birth_date + 2000000000), count(*) FROM population GROUP BY 1",
    "SELECT count(*) FROM population WHERE date_diff('hour', birth_date, "
    "birth_date + 200000000) > 0",
]


# Budget enough for the whole battery, so that each question meets the checks, not the budget.
PRIVACY = """[privacy]
epsilon_per_question = 1.0
epsilon_per_period = 100000.0
delta_per_question = 1e-9
delta_per_period = 1e-3

"""


# How the row reader finds each canary row, to check it is there before the battery.
PLANTED = {"population": f"person_id = '{PERSON_ID}' AND birth_date = DATE '1903-03-17'",
           "social_insurance": "monthly_amount = 98765.43",
           "medical_visits": "icd10 = 'T66.X9' AND total_cost = 87654.32",
           "transit_trips": "card_id = 'CCANARY7'",
           "marriages": "registration_id = 'JCANARY5'"}


def unchecked_plan(sql: str) -> bytes:
    """The plan bytes for SQL, built without any check: what an attacker can send a node."""
    return _QueryBuilder(sql).build(parse_tree(sql)).plan.SerializeToString()


def _canary_files(directory: Path) -> dict[str, Path]:
    files = {}
    for dataset, row in CANARY_ROWS.items():
        files[dataset] = path = directory / f"canary-{dataset}.csv"
        with path.open("w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(DATASETS[dataset].column_names)
            writer.writerow(row)
    return files


def plant_canaries(node, directory: Path) -> None:
    """Load the canary rows through the node's admin socket, as city IT loads a file."""
    with grpc.insecure_channel(f"unix:{node.config.admin_socket_path}") as channel:
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        for dataset, path in _canary_files(directory).items():
            admin.Ingest(admin_pb2.IngestRequest(dataset=dataset, path=str(path),
                                                 mode=admin_pb2.INGEST_MODE_APPEND), timeout=60)


def plant_canaries_in_file(database: Path, directory: Path) -> None:
    """Load the canary rows into a city's DuckDB file before its node starts (a Spark node
    reads the Parquet written from it, and loads nothing itself)."""
    store = DuckDBStore(database, threads=1)
    try:
        for dataset, path in _canary_files(directory).items():
            store.ingest(dataset, path, IngestMode.APPEND)
    finally:
        store.close()


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@dataclass
class Seen:
    """Everything the battery brought back, by where it was seen."""

    answers: list[str] = field(default_factory=list)
    # (member, where: node, coordinator or gateway, the question, what came back)
    errors: list[tuple[str, str, str, str]] = field(default_factory=list)
    # (member, the question, the status the canary city's node answered it with)
    statuses: list[tuple[str, str, grpc.StatusCode]] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    audit: str = ""
    planted: dict[str, int] = field(default_factory=dict)  # canary rows found, per dataset
    store: str = "duckdb"  # the canary city's


def _status_text(error: grpc.RpcError) -> str:
    """The status message and every status detail, as a caller can read them."""
    status = rpc_status.from_call(error)
    details = "" if status is None else str(status)
    return f"{error.details()}\n{details}"


def _values_text(rows) -> str:
    return repr([[from_value(v) for v in row.values] for row in rows])


@pytest.fixture(scope="module", params=sparkkit.STORES)
def seen(request, tmp_path_factory) -> Seen:
    """The battery's sightings; with "spark", the canary city is served from Spark."""
    on_spark = sparkkit.on_spark(request.param, CANARY_CITY)
    lines = _Lines()
    root = logging.getLogger()
    level = root.level
    root.addHandler(lines)
    root.setLevel(logging.INFO)  # as a node started with -v
    directory = tmp_path_factory.mktemp("canaries")
    cities = (CANARY_CITY, OTHER_CITY)
    build_city_store(directory / f"{CANARY_CITY}.duckdb", seed=7, rows=0)
    build_city_store(directory / f"{OTHER_CITY}.duckdb", seed=8, rows=200)
    trusted = init_trusted_region(directory, region="test", cities=cities, authorities=MEMBERS)
    policy = PRIVACY + open_policy(ROW_READER, "row") + open_policy(STATISTICIAN, "aggregate")
    if on_spark:
        plant_canaries_in_file(directory / f"{CANARY_CITY}.duckdb", directory)
    nodes = start_nodes(trusted, cities, policy, spark_cities=on_spark)
    coordinators = {m: Coordinator(*trusted.directory.open_as(m)) for m in MEMBERS}
    gateways = {m: start_gateway(*trusted.directory.open_as(m), "127.0.0.1:0") for m in MEMBERS}
    region = RunningRegion(directory, trusted, nodes, coordinators[ROW_READER], duckdb.connect())
    found = Seen(store=request.param)
    try:
        if not on_spark:
            plant_canaries(nodes[CANARY_CITY], directory)
        for dataset, where in PLANTED.items():
            answer = coordinators[ROW_READER].ask_sql(
                f"SELECT count(*) FROM {dataset} WHERE {where}", purpose=PURPOSE,
                cities=(CANARY_CITY,))
            found.planted[dataset] = answer.table.rows[0][0]
        for member in MEMBERS:
            _ask_everywhere(region, member, coordinators[member], gateways[member], found)
    finally:
        for gateway in gateways.values():
            gateway.stop(grace=None)
        for coordinator in coordinators.values():
            coordinator.close()
        region.stop()
        root.removeHandler(lines)
        root.setLevel(level)
    found.logs = lines.lines
    found.audit = "".join(path.read_text(errors="replace") for node in nodes.values()
                          for path in sorted((node.config.state_path / "audit").iterdir()))
    return found


# Spark answers these exactly where DuckDB overflows (DuckDB widens each product's DECIMAL
# type until it overflows; Spark keeps DECIMAL(38,2), which holds the product): the row reader
# may read the amount, so its answer carrying it is no leak.
EXACT_ON_SPARK = {f"SELECT sum({NESTED}) FROM social_insurance"}


def _answered(found: Seen, member: str, sql: str, answer: str) -> None:
    if not (found.store == "spark" and member == ROW_READER and sql in EXACT_ON_SPARK):
        found.answers.append(answer)


def _ask_everywhere(region: RunningRegion, member: str, coordinator: Coordinator, gateway,
                    found: Seen) -> None:
    node = regionkit.node_stub(region, CANARY_CITY, member)
    with regionkit.secure_channel(region, f"127.0.0.1:{gateway.port}", member,
                                  as_member=member) as channel:
        federation = federation_pb2_grpc.FederationServiceStub(channel)
        for sql in HOSTILE:
            try:
                response = regionkit.aggregate(region, CANARY_CITY, unchecked_plan(sql),
                                               as_member=member, stub=node, timeout=30)
                _answered(found, member, sql, str(response))
                found.statuses.append((member, sql, grpc.StatusCode.OK))
            except grpc.RpcError as error:
                found.errors.append((member, "node", sql, _status_text(error)))
                found.statuses.append((member, sql, error.code()))
            # On Spark only the node's and the gateway's answers are read: the gateway asks
            # through a coordinator of its own, and the store's part is the node's.
            if found.store != "spark":
                try:
                    answer = coordinator.ask_sql(sql, purpose=PURPOSE)
                    _answered(found, member, sql, repr(answer.table.rows))
                    found.errors += [(member, "coordinator", sql, o.detail)
                                     for o in answer.outcomes]
                except CityfedError as error:
                    found.errors.append((member, "coordinator", sql, str(error)))
            try:
                reply = federation.FederatedAggregate(federation_pb2.FederatedAggregateRequest(
                    sql=sql, purpose=PURPOSE), timeout=30)
                # The question comes back as sent (plan, query), the caller's own literals
                # with it: the answer is everything else.
                reply.ClearField("plan")
                reply.ClearField("query")
                _answered(found, member, sql, str(reply) + _values_text(reply.rows))
            except grpc.RpcError as error:
                found.errors.append((member, "gateway", sql, _status_text(error)))


def _carrying_a_value(texts) -> list[str]:
    return [text for text in texts
            if any(canary in text for canary in CANARIES) or DUCKDB_TEXT.search(text)]


def test_the_battery_reached_the_canaries(seen):
    """The canary rows are in, and the city ran questions and refused others: the battery is
    not vacuous."""
    assert seen.planted == dict.fromkeys(CANARY_ROWS, 1)
    assert len(seen.statuses) == len(HOSTILE) * len(MEMBERS)
    assert {code for _, _, code in seen.statuses} >= {grpc.StatusCode.INVALID_ARGUMENT}
    assert len(seen.errors) > len(HOSTILE)


def _errors(seen: Seen, where: str) -> list[str]:
    return [text for _, path, _, text in seen.errors if path == where]


def test_no_error_a_node_returns_carries_a_value(seen):
    assert _carrying_a_value(_errors(seen, "node")) == []


def test_no_error_the_coordinator_raises_carries_a_value(seen):
    if seen.store == "spark":
        pytest.skip("on Spark the coordinator's errors are read through the gateway's")
    assert _carrying_a_value(_errors(seen, "coordinator")) == []


def test_no_error_the_gateway_returns_carries_a_value(seen):
    assert _carrying_a_value(_errors(seen, "gateway")) == []


def test_no_answer_to_a_hostile_question_carries_a_canary(seen):
    assert _carrying_a_value(seen.answers) == []


def test_no_audit_record_carries_a_value(seen):
    assert seen.audit, "the audit log was not found"
    assert _carrying_a_value([seen.audit]) == []


def test_no_log_line_carries_a_value(seen):
    assert any("INVALID_QUERY" in line for line in seen.logs), "no refusal was logged"
    assert _carrying_a_value(seen.logs) == []


def _node_said(seen: Seen, member: str, sql: str) -> tuple[grpc.StatusCode, str]:
    (code,) = [c for m, s, c in seen.statuses if (m, s) == (member, sql)]
    texts = [t for m, path, s, t in seen.errors if (m, path, s) == (member, "node", sql)]
    return code, texts[0] if texts else ""


SPARK_MESSAGES = {
    "the query failed at run time: decimal overflow in a multiplication in aggregate 1":
        "the query failed at run time: a value went out of range",
    "the query failed at run time: decimal overflow in an addition in aggregate 1":
        "the query failed at run time: a value went out of range",
    "the query failed at run time: division by zero in an integer division (//) in aggregate 1":
        "the query failed at run time: division by zero in an integer division (//) or a "
        "modulo (%)",
    "the query failed at run time: a date or timestamp went out of range":
        "the query failed at run time: a value went out of range",
}


@pytest.mark.parametrize(("sql", "message"), [
    (f"SELECT sum(monthly_amount * {HUGE}) FROM social_insurance",
     "the query failed at run time: decimal overflow in a multiplication in aggregate 1"),
    (f"SELECT sum(monthly_amount + {HUGE[:36]}.99) FROM social_insurance",
     "the query failed at run time: decimal overflow in an addition in aggregate 1"),
    ("SELECT sum(1 // (year(birth_date) - year(birth_date))) FROM population",
     "the query failed at run time: division by zero in an integer division (//) in "
     "aggregate 1"),
    ("SELECT count(*) FROM population WHERE registered_on + 2147483647 > DATE '2000-01-01'",
     "the query failed at run time: a date or timestamp went out of range"),
])
def test_a_failure_at_run_time_is_invalid_argument_with_a_fixed_message(seen, sql, message):
    code, text = _node_said(seen, ROW_READER, sql)
    if seen.store == "spark":  # Spark's error classes tell less than DuckDB's text
        message = SPARK_MESSAGES[message]
    assert (code, text.splitlines()[0]) == (grpc.StatusCode.INVALID_ARGUMENT, message)


def test_an_ill_typed_plan_is_refused_by_the_node_before_it_runs(seen):
    for member in MEMBERS:
        code, text = _node_said(seen, member, "SELECT count(*) FROM population WHERE "
                                              "person_id = 1")
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert text.startswith("WHERE: the 2nd argument of '=' is INTEGER, the 1st is VARCHAR")


def test_a_name_the_caller_wrote_is_never_logged(tmp_path, caplog):
    """A resident's ID written in double quotes is a column name to SQL: the refusal echoes it
    to its own writer, but the node's log keeps only the reason."""
    from cityfed.v1 import query_pb2

    region = regionkit.start_region(tmp_path, ("beijing",), rows=10)
    try:
        plan = query_pb2.AggregatePlan(dataset="population")
        plan.group_by.add(column=PERSON_ID)
        plan.aggregates.add(function=query_pb2.AGGREGATE_FUNCTION_COUNT_STAR)
        with caplog.at_level("DEBUG"), pytest.raises(grpc.RpcError) as refused:
            regionkit.aggregate(region, "beijing", plan.SerializeToString())
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert any("INVALID_QUERY" in r.getMessage() for r in caplog.records)
        assert not [r for r in caplog.records if PERSON_ID in r.getMessage()]
    finally:
        region.stop()
