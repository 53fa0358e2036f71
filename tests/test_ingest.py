"""Loading files: validated against the schema, all or nothing, and live while the node serves."""

from __future__ import annotations

import csv
import threading
from pathlib import Path

import grpc
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cityfed.v1 import admin_pb2, admin_pb2_grpc

from cli.main import main
from federation.errors import FileMissing, IngestError, LoadInProgress
from federation.query.sql import parse_query
from federation.serving.grpc_errors import error_reason
from node.ingest import IngestMode
from node.stores.duckdb import DuckDBStore
from tests import regionkit

HEADER = ["person_id", "scheme", "status", "enrolled_on", "monthly_amount", "last_paid_on"]


def rows(count: int, start: int = 0) -> list[list[str]]:
    return [[f"{110101199001010000 + start + i:018d}", "pension", "active", "2010-05-01",
             f"{1000 + i}.50", "" if i % 3 == 0 else "2026-10-01"] for i in range(count)]


def write_csv(path: Path, body: list[list[str]], header: list[str] = HEADER) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(body)
    return path


def snapshot(store: DuckDBStore) -> list[tuple]:
    cursor = store._connection.cursor()
    try:
        return cursor.execute("SELECT * FROM social_insurance ORDER BY ALL").fetchall()
    finally:
        cursor.close()


@pytest.fixture
def store(tmp_path):
    opened = DuckDBStore(tmp_path / "city.duckdb", threads=1)
    opened.ingest("social_insurance", write_csv(tmp_path / "seed.csv", rows(10)),
                  IngestMode.REPLACE)
    yield opened
    opened.close()


def test_a_csv_loads_with_types_and_nulls(store, tmp_path):
    result = store.ingest("social_insurance", write_csv(tmp_path / "a.csv", rows(5, 100)),
                          IngestMode.REPLACE)
    assert (result.rows_loaded, result.row_count) == (5, 5)
    first = snapshot(store)[0]
    assert str(first[4]) == "1000.50" and first[5] is None


def test_append_adds_and_replace_replaces(store, tmp_path):
    store.ingest("social_insurance", write_csv(tmp_path / "b.csv", rows(4, 50)), IngestMode.APPEND)
    assert len(snapshot(store)) == 14
    store.ingest("social_insurance", write_csv(tmp_path / "c.csv", rows(2, 80)),
                 IngestMode.REPLACE)
    assert len(snapshot(store)) == 2


def test_a_parquet_file_loads(store, tmp_path):
    table = pa.table({name: [row[i] or None for row in rows(7, 200)]
                      for i, name in enumerate(HEADER)})
    path = tmp_path / "d.parquet"
    pq.write_table(table, path)
    assert store.ingest("social_insurance", path, IngestMode.APPEND).row_count == 17


@pytest.mark.parametrize(("row", "column", "problem"), [
    (1, "monthly_amount", "not a valid DECIMAL(12,2)"),
    (2, "status", "must be one of active, suspended, closed"),
    (3, "person_id", "does not match the pattern"),
    (4, "enrolled_on", "not a valid DATE"),
    (5, "scheme", "does not allow NULL"),
    (6, "monthly_amount", "more decimal places"),
])
def test_a_bad_value_changes_nothing_and_the_error_names_file_line_and_column(
        store, tmp_path, row, column, problem):
    before = snapshot(store)
    body = rows(8)
    bad_values = {"monthly_amount": "lots", "status": "dead", "person_id": "12345",
                  "enrolled_on": "2010-13-45", "scheme": ""}
    if row == 6:
        body[row - 1][HEADER.index(column)] = "12.345"
    else:
        body[row - 1][HEADER.index(column)] = bad_values[column]
    path = write_csv(tmp_path / "bad.csv", body)
    with pytest.raises(IngestError) as rejected:
        store.ingest("social_insurance", path, IngestMode.REPLACE)
    message = str(rejected.value)
    assert str(path) in message and f"line {row + 1}" in message
    assert f"column {column}" in message and problem in message
    assert snapshot(store) == before


@pytest.mark.parametrize("header", [HEADER[:-1], [*HEADER, "extra"], ["wrong", *HEADER[1:]]])
def test_wrong_columns_change_nothing(store, tmp_path, header):
    before = snapshot(store)
    body = [row[:len(header)] + ["x"] * (len(header) - len(row)) for row in rows(3)]
    with pytest.raises(IngestError, match="columns must be exactly"):
        store.ingest("social_insurance", write_csv(tmp_path / "w.csv", body, header),
                     IngestMode.REPLACE)
    assert snapshot(store) == before


@pytest.mark.parametrize(("good_rows", "bad_row"), [
    (2, ["110101199001010015", "pension"]),
    (3, [*rows(1)[0], "110101199001010023"]),
    (120_000, ["110101199001010031", "pension", "active"]),  # past pyarrow's first blocks
])
def test_a_row_of_the_wrong_width_is_named_by_its_line_and_not_quoted(store, tmp_path,
                                                                       good_rows, bad_row):
    before = snapshot(store)
    path = write_csv(tmp_path / "ragged.csv", [*rows(good_rows), bad_row, *rows(2, 500)])
    with pytest.raises(IngestError) as rejected:
        store.ingest("social_insurance", path, IngestMode.REPLACE)
    message = str(rejected.value)
    line = good_rows + 2
    assert f"line {line} (data row {line - 1})" in message
    assert f"has {len(bad_row)} values" in message
    assert bad_row[0] not in message and "pension" not in message
    assert snapshot(store) == before


def test_a_file_without_a_header_is_refused_without_quoting_its_first_row(store, tmp_path):
    path = tmp_path / "headless.csv"
    path.write_text("110101199001010007,pension,active,2010-05-01,4321.50,2026-10-01\n")
    with pytest.raises(IngestError, match="columns must be exactly") as rejected:
        store.ingest("social_insurance", path, IngestMode.REPLACE)
    assert "110101199001010007" not in str(rejected.value)
    assert "4321" not in str(rejected.value)


def test_missing_and_unsupported_files(store, tmp_path):
    with pytest.raises(FileMissing):
        store.ingest("social_insurance", tmp_path / "nothing.csv", IngestMode.REPLACE)
    (tmp_path / "data.json").write_text("{}")
    with pytest.raises(IngestError, match=r"\.csv or \.parquet"):
        store.ingest("social_insurance", tmp_path / "data.json", IngestMode.REPLACE)


def test_one_load_at_a_time_per_dataset(store, tmp_path):
    lock = store._load_locks["social_insurance"]
    lock.acquire()
    try:
        with pytest.raises(LoadInProgress):
            store.ingest("social_insurance", write_csv(tmp_path / "e.csv", rows(1)),
                         IngestMode.APPEND)
    finally:
        lock.release()


@pytest.fixture
def region(tmp_path):
    running = regionkit.start_region(tmp_path, ("tianjin",), rows=0)
    yield running
    running.stop()


@pytest.fixture
def serving(region):
    return region.nodes["tianjin"]


def test_a_load_through_the_admin_socket_while_queries_see_old_or_new_rows(region, serving,
                                                                           tmp_path):
    config_file = tmp_path / "tianjin.toml"
    config_file.write_text(regionkit.config_toml(serving.config))
    small, large = write_csv(tmp_path / "small.csv", rows(1_000)), \
        write_csv(tmp_path / "large.csv", rows(200_000, 5_000))
    assert main(["node", "ingest", str(small), "--config", str(config_file),
                 "--dataset", "social_insurance"]) == 0

    plan = parse_query("SELECT count(*) FROM social_insurance").plan.SerializeToString()
    seen, done = set(), threading.Event()
    stub = regionkit.node_stub(region, "tianjin")

    def ask_until_done():
        while not done.is_set():
            response = regionkit.aggregate(region, "tianjin", plan, stub=stub)
            seen.add(response.groups[0].aggregates[0].count)

    asker = threading.Thread(target=ask_until_done)
    asker.start()
    try:
        assert main(["node", "ingest", str(large), "--config", str(config_file),
                     "--dataset", "social_insurance"]) == 0
    finally:
        done.set()
        asker.join()
    final = regionkit.aggregate(region, "tianjin", plan, stub=stub)
    assert seen <= {1_000, 200_000} and 1_000 in seen
    assert final.groups[0].aggregates[0].count == 200_000


def test_the_admin_service_refuses_bad_requests_with_statuses(serving, tmp_path):
    socket = serving.config.admin_socket_path
    assert oct(socket.stat().st_mode & 0o777) == "0o600"
    with grpc.insecure_channel(f"unix:{socket}") as channel:
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        cases = [
            (admin_pb2.IngestRequest(dataset="population", path="relative.csv",
                                     mode=admin_pb2.INGEST_MODE_REPLACE),
             grpc.StatusCode.INVALID_ARGUMENT),
            (admin_pb2.IngestRequest(dataset="population", path=str(tmp_path / "none.csv"),
                                     mode=admin_pb2.INGEST_MODE_REPLACE),
             grpc.StatusCode.NOT_FOUND),
            (admin_pb2.IngestRequest(dataset="population", path=str(tmp_path / "x.csv")),
             grpc.StatusCode.INVALID_ARGUMENT),
            (admin_pb2.IngestRequest(dataset="nope", path=str(tmp_path / "x.csv"),
                                     mode=admin_pb2.INGEST_MODE_APPEND),
             grpc.StatusCode.INVALID_ARGUMENT),
        ]
        for request, code in cases:
            with pytest.raises(grpc.RpcError) as refused:
                admin.Ingest(request)
            assert refused.value.code() == code, request
            assert error_reason(refused.value)


def test_ingest_without_a_running_node_opens_the_store_itself(tmp_path, capsys):
    config_file = tmp_path / "city.toml"
    config_file.write_text('[node]\ncity = "langfang"\ndatabase = "langfang.duckdb"\n'
                           'manifest = "m.json"\nroot_public_key = "r.pub"\n'
                           'tls_certificate = "t.pem"\ntls_private_key = "t.key"\n'
                           'tls_ca = "ca.pem"\nsigning_key = "s.key"\n')
    path = write_csv(tmp_path / "f.csv", rows(3))
    assert main(["node", "ingest", str(path), "--config", str(config_file),
                 "--dataset", "social_insurance", "--append"]) == 0
    assert "loaded 3 rows" in capsys.readouterr().out
    bad = write_csv(tmp_path / "g.csv", [["x", *rows(1)[0][1:]]])
    assert main(["node", "ingest", str(bad), "--config", str(config_file),
                 "--dataset", "social_insurance"]) == 1
    assert "line 2" in capsys.readouterr().err
