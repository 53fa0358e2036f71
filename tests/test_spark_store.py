"""A city served from Spark answers as a DuckDB city does: the oracle battery over a region with
one city on Spark equals central DuckDB's answers, the privacy rules hold, deadlines cancel the
Spark job, and the node's Spark session cannot reach a file. Skipped without Java and pyspark
(tests/sparkkit.py says how to enable them)."""

from __future__ import annotations

import time

import grpc
import pytest

from federation.errors import DeadlineExceeded, ReadOnlyStore
from federation.query.sql import parse_query
from node.compile import compile_plan
from node.ingest import IngestMode
from tests import sparkkit
from tests.regionkit import aggregate, assert_same_rows
from tests.test_oracle import BATTERY

pytestmark = sparkkit.needs_spark


def spark_store(region):
    return region.nodes[sparkkit.SPARK_CITY].store


def test_the_spark_city_is_served_from_spark(spark_region):
    assert spark_store(spark_region).engine == "spark"
    assert {node.store.engine for city, node in spark_region.nodes.items()
            if city != sparkkit.SPARK_CITY} == {"duckdb"}


@pytest.mark.parametrize("sql", BATTERY)
def test_the_oracle_battery_with_a_city_on_spark_equals_central_duckdb(spark_region, sql):
    answer = spark_region.ask(sql)
    assert answer.complete, answer.outcomes
    assert_same_rows(answer.table.rows, spark_region.central.execute(sql).fetchall(),
                     ordered="ORDER BY" in sql)


def test_row_counts_come_from_the_engine(spark_region):
    counts = spark_store(spark_region).row_counts()
    central = spark_region.central
    for name, count in counts.items():
        (expected,) = central.execute(
            f"SELECT count(*) FROM city_{sparkkit.SPARK_CITY}.{name}").fetchone()
        assert count == expected


def test_list_datasets_counts_rows_once_per_cache_period(spark_region, monkeypatch):
    from cityfed.v1 import node_pb2

    from tests.regionkit import node_stub

    store = spark_store(spark_region)
    jobs = []
    run = store._run

    def counted(*args, **kwargs):
        jobs.append(args[1])
        return run(*args, **kwargs)

    monkeypatch.setattr(store, "_run", counted)
    monkeypatch.setattr(store, "_counts", None)
    stub = node_stub(spark_region, sparkkit.SPARK_CITY)
    first, second = (stub.ListDatasets(node_pb2.ListDatasetsRequest()) for _ in range(2))
    assert len(jobs) == 1  # one job for every dataset, and none for the second call
    assert [d.row_count for d in first.datasets] == [d.row_count for d in second.datasets]
    assert sum(d.row_count for d in first.datasets) > 0
    monkeypatch.setattr(store, "_count_cache_seconds", 0.0)
    stub.ListDatasets(node_pb2.ListDatasetsRequest())
    assert len(jobs) == 2  # counted again once the period is over


def test_a_spark_node_closing_leaves_the_process_spark_to_the_others(spark_region):
    from node.stores.spark import SparkStore

    other = SparkStore.open(spark_region.nodes[sparkkit.SPARK_CITY].config)
    other.close()
    assert spark_store(spark_region).row_counts()["population"] > 0
    answer = spark_region.ask("SELECT count(*) FROM population", cities=(sparkkit.SPARK_CITY,))
    assert answer.complete, answer.outcomes


def test_a_spark_node_refuses_loads_and_says_whose_they_are(spark_region, tmp_path):
    with pytest.raises(ReadOnlyStore, match="city's own pipeline"):
        spark_store(spark_region).ingest("population", tmp_path / "x.csv", IngestMode.REPLACE)


def test_the_session_cannot_read_a_file_path(spark_region, tmp_path):
    store = spark_store(spark_region)
    parquet = spark_region.directory / "parquet" / "population" / "part-0.parquet"
    for session in (store._exact, store._private):
        with pytest.raises(Exception, match=r"TABLE_OR_VIEW_NOT_FOUND|UNSUPPORTED"):
            session.sql(f"SELECT count(*) FROM parquet.`{parquet}`").collect()


def test_a_deadline_cancels_the_spark_job(spark_region):
    store = spark_store(spark_region)
    # The taps joined with themselves twice, every triple hashed: minutes of work for 2 cores.
    slow = compile_plan(parse_query("SELECT count(*) FROM transit_trips").plan, store.dialect)
    sql = ("SELECT count(*) FROM transit_trips a CROSS JOIN transit_trips b "
           "CROSS JOIN transit_trips c WHERE xxhash64(a.card_id, b.card_id, c.card_id) = 0")
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        store._run(store._exact, sql, [], timeout=1.0, on_cancel=None)
    assert time.monotonic() - started < 15
    # The store answers again at once: the job was cancelled, not left running.
    assert store.aggregate(slow, timeout=30)[0][0] > 0


def test_a_deadline_reaches_the_caller_as_deadline_exceeded(spark_region):
    with pytest.raises(grpc.RpcError) as raised:
        plan = parse_query("SELECT count(*) FROM transit_trips").plan.SerializeToString()
        aggregate(spark_region, sparkkit.SPARK_CITY, plan, timeout=0.001)
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def _private_rows(region, sql: str, rows_per_person: int, bounds: dict) -> list[tuple]:
    from decimal import Decimal

    from node.compile import compile_private_plan
    from node.policy import DatasetPrivacy

    store = spark_store(region)
    privacy = DatasetPrivacy(rows_per_person, {c: (Decimal(lo), Decimal(hi))
                                                for c, (lo, hi) in bounds.items()})
    plan = parse_query(sql).plan
    return store.aggregate(compile_private_plan(plan, privacy, store.dialect), timeout=60)


def test_a_private_answer_reads_at_most_each_persons_bound_of_rows(spark_region):
    ((count,),) = _private_rows(spark_region, "SELECT count(*) FROM transit_trips", 1, {})
    (units,) = spark_region.central.execute(
        "SELECT count(DISTINCT coalesce(person_id, 'card_id:' || card_id)) "
        f"FROM city_{sparkkit.SPARK_CITY}.transit_trips").fetchone()
    assert count == units
    ((twice,),) = _private_rows(spark_region, "SELECT count(*) FROM transit_trips", 2, {})
    assert units < twice


def test_a_private_sum_clamps_every_value_to_its_bounds(spark_region):
    ((_, clamped),) = _private_rows(spark_region, "SELECT sum(fare) FROM transit_trips",
                                        10**6, {"fare": ("1", "2")})
    (expected,) = spark_region.central.execute(
        "SELECT sum(least(greatest(fare, 1), 2)) "
        f"FROM city_{sparkkit.SPARK_CITY}.transit_trips").fetchone()
    assert clamped == expected


def test_a_private_answer_does_not_fail_on_one_rows_overflow(spark_region):
    rows = _private_rows(spark_region, "SELECT sum(fare * 99999999999999) FROM transit_trips "
                         "WHERE 1 // (fare - fare) = 0", 3, {"fare": ("0", "10")})
    assert len(rows) == 1  # neither the overflow nor the division by zero failed the question


def test_a_policy_refusal_is_the_same_from_a_spark_city(spark_region):
    with pytest.raises(grpc.RpcError) as raised:
        plan = parse_query("SELECT count(*) FROM population").plan.SerializeToString()
        aggregate(spark_region, sparkkit.SPARK_CITY, plan, as_member="outsider")
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_a_run_time_error_is_a_fixed_message_without_values(spark_region):
    with pytest.raises(grpc.RpcError) as raised:
        plan = parse_query("SELECT sum(fare) FROM transit_trips WHERE 1 // 0 = 1"
                           ).plan.SerializeToString()
        aggregate(spark_region, sparkkit.SPARK_CITY, plan)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details().startswith("the query failed at run time")


def test_a_spark_node_backs_up_its_state_and_audit_log_and_restores_without_a_database(
        spark_region, tmp_path):
    import dataclasses

    from cityfed.v1 import admin_pb2, admin_pb2_grpc

    from node.backup import BACKUP_FILE, DATABASE_FILE, RANK_SEED_FILE, restore

    node = spark_region.nodes[sparkkit.SPARK_CITY]
    spark_region.ask("SELECT count(*) FROM population", cities=(sparkkit.SPARK_CITY,))
    with grpc.insecure_channel(f"unix:{node.config.admin_socket_path}") as channel:
        response = admin_pb2_grpc.AdminServiceStub(channel).Backup(
            admin_pb2.BackupRequest(directory=str(tmp_path / "backup")), timeout=120)
    assert response.audit_records > 0
    assert not (tmp_path / "backup" / DATABASE_FILE).exists()
    assert (tmp_path / "backup" / "state" / RANK_SEED_FILE).read_text() == \
        (node.config.state_path / RANK_SEED_FILE).read_text()
    described = (tmp_path / "backup" / BACKUP_FILE).read_text()
    assert '"store":"spark"' in described
    assert spark_store(spark_region).row_counts()["population"] > 0

    elsewhere = dataclasses.replace(node.config, database=tmp_path / "host2" / "x.duckdb")
    restored = restore(tmp_path / "backup", elsewhere, last_index=response.audit_records + 10)
    assert restored.backup.store == "spark"
    assert not elsewhere.database.exists()
    assert (elsewhere.state_path / RANK_SEED_FILE).exists()
    assert (elsewhere.state_path / "audit").is_dir()
    with pytest.raises(Exception, match='store = "spark"'):
        restore(tmp_path / "backup", dataclasses.replace(
            elsewhere, store="duckdb", spark_master="", spark_datasets={},
            database=tmp_path / "host3" / "x.duckdb"), last_index=response.audit_records + 10)
