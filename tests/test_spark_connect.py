"""A city on a Spark cluster it reaches over Spark Connect (`spark_remote = "sc://..."`), as a
real deployment runs: a Spark Connect server from the pyspark wheel's own jars runs here as a
child process (local mode), one for the module, started in 10-20 s and stopped at the end.
Skipped without Java and pyspark's `spark` extra (tests/sparkkit.py says how to enable them)."""

from __future__ import annotations

import os
import time

import grpc
import pytest

from federation.errors import DeadlineExceeded
from federation.query.sql import parse_query
from node.compile import compile_plan
from node.stores.spark import _is_connect
from tests import sparkkit
from tests.conftest import CITIES
from tests.regionkit import aggregate, assert_same_rows
from tests.test_oracle import BATTERY

pytestmark = sparkkit.needs_spark

# The battery's kinds of question: counts, groups, sums and averages of decimals, integer
# division of a date_diff, date_trunc, year() of NULLs, HAVING, ORDER BY with LIMIT/OFFSET
# (the whole battery runs on a local Spark in test_spark_store: a few suffice for Connect).
CONNECT_BATTERY = [BATTERY[i] for i in (1, 4, 5, 7, 13, 16, 19, 21)]


@pytest.fixture(scope="module")
def connect_region(tmp_path_factory):
    # A Spark Connect session marks the whole process as in Connect mode (pyspark sets
    # SPARK_CONNECT_MODE_ENABLED and SPARK_REMOTE in os.environ), which a node process, one
    # store, never minds; the local Spark the other test modules share in this process does.
    environment = dict(os.environ)
    server = sparkkit.ConnectServer(tmp_path_factory.mktemp("spark-connect"))
    try:
        running = sparkkit.start_mixed_region(tmp_path_factory.mktemp("connect-region"),
                                              CITIES, rows=600, spark_remote=server.address)
        try:
            yield running
        finally:
            running.stop()
    finally:
        server.stop()
        os.environ.clear()
        os.environ.update(environment)


def store_of(region):
    return region.nodes[sparkkit.SPARK_CITY].store


def test_the_spark_city_answers_over_spark_connect(connect_region):
    store = store_of(connect_region)
    assert store.engine == "spark"
    assert _is_connect(store._exact) and _is_connect(store._private)
    assert store._exact.session_id != store._private.session_id


@pytest.mark.parametrize("sql", CONNECT_BATTERY)
def test_the_oracle_over_spark_connect_equals_central_duckdb(connect_region, sql):
    answer = connect_region.ask(sql)
    assert answer.complete, answer.outcomes
    assert_same_rows(answer.table.rows, connect_region.central.execute(sql).fetchall(),
                     ordered="ORDER BY" in sql)


def test_a_deadline_interrupts_the_operation_on_the_server(connect_region):
    store = store_of(connect_region)
    # The taps joined with themselves twice, every triple hashed: minutes of work for 2 cores.
    sql = ("SELECT count(*) FROM transit_trips a CROSS JOIN transit_trips b "
           "CROSS JOIN transit_trips c WHERE xxhash64(a.card_id, b.card_id, c.card_id) = 0")
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        store._run(store._exact, sql, [], timeout=1.0, on_cancel=None)
    assert time.monotonic() - started < 15
    # The server answers again at once: interruptTag stopped the job, it is not still running.
    slow = compile_plan(parse_query("SELECT count(*) FROM transit_trips").plan, store.dialect)
    started = time.monotonic()
    assert store.aggregate(slow, timeout=30)[0][0] > 0
    assert time.monotonic() - started < 10


def test_a_deadline_reaches_the_caller_as_deadline_exceeded(connect_region):
    plan = parse_query("SELECT count(*) FROM transit_trips").plan.SerializeToString()
    with pytest.raises(grpc.RpcError) as raised:
        aggregate(connect_region, sparkkit.SPARK_CITY, plan, timeout=0.001)
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    answer = connect_region.ask("SELECT count(*) FROM transit_trips",
                                cities=(sparkkit.SPARK_CITY,))
    assert answer.complete
