"""Small seeded city stores for tests, with NULLs, decimals, dates and timestamps everywhere the
schemas allow them, plus a running region of real nodes on port 0 and a central DuckDB."""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import grpc
from cityfed.v1 import node_pb2, node_pb2_grpc
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2

from federation.coordination.coordinator import Coordinator
from federation.query.datasets import DATASETS, create_table_sql
from federation.query.values import comparison_key, same_value
from federation.synthetic.local_region import TrustedRegion, init_trusted_region
from federation.trust.identity import RegionDirectory, channel_options
from federation.trust.tokens import mint_token
from node.config import NodeConfig
from node.server import RunningNode, start_node

CITY_CODES = {"beijing": "110000", "tianjin": "120000", "langfang": "131000",
              "baoding": "130600", "shijiazhuang": "130100"}

# Each table is written with plain DuckDB SQL from range(); `h(i, n)` is a per-row pseudo-random
# integer that depends on the seed, so every city gets different rows.
_FILL = {
    "population": """
        SELECT lpad(CAST(h(i, 1) % 1000000000000000000 AS VARCHAR), 17, '0') || 'X',
               'name' || i, CASE WHEN h(i, 2) % 2 = 0 THEN 'F' ELSE 'M' END,
               DATE '1930-01-01' + CAST(h(i, 3) % 32000 AS INTEGER),
               ['110101','110105','120101','131002','130602'][1 + h(i, 4) % 5],
               ['110000','120000','131000'][1 + h(i, 5) % 3],
               DATE '2000-01-01' + CAST(h(i, 6) % 9000 AS INTEGER),
               CASE WHEN h(i, 7) % 10 = 0
                    THEN DATE '2020-01-01' + CAST(h(i, 8) % 2000 AS INTEGER) END
        FROM range(?) t(i)""",
    "social_insurance": """
        SELECT lpad(CAST(h(i, 1) % 1000 AS VARCHAR), 18, '0'),
               ['pension','medical','unemployment'][1 + h(i, 2) % 3],
               ['active','suspended','closed'][1 + h(i, 3) % 3],
               DATE '1990-01-01' + CAST(h(i, 4) % 12000 AS INTEGER),
               CAST((h(i, 5) % 900000) / 100.0 AS DECIMAL(12,2)),
               CASE WHEN h(i, 6) % 7 <> 0
                    THEN DATE '2025-01-01' + CAST(h(i, 7) % 600 AS INTEGER) END
        FROM range(?) t(i)""",
    "transit_trips": """
        SELECT 'C' || (h(i, 1) % 500),
               CASE WHEN h(i, 2) % 4 <> 0 THEN lpad(CAST(h(i, 3) % 1000 AS VARCHAR), 18, '0') END,
               TIMESTAMP '2026-09-01' + to_microseconds(CAST(h(i, 4) % 2592000000000 AS BIGINT)),
               ['metro','bus','rail'][1 + h(i, 5) % 3],
               'L' || (h(i, 6) % 12), 'S' || (h(i, 7) % 40),
               ['110101','110105','120101','131002'][1 + h(i, 8) % 4],
               CAST((h(i, 9) % 1000) / 100.0 AS DECIMAL(8,2)),
               ['110000','120000','131000'][1 + h(i, 10) % 3]
        FROM range(?) t(i)""",
    "medical_visits": """
        SELECT 'V' || i, lpad(CAST(h(i, 1) % 1000 AS VARCHAR), 18, '0'),
               ['110000','120000','131000'][1 + h(i, 2) % 3],
               DATE '2025-01-01' + CAST(h(i, 3) % 600 AS INTEGER), 'H' || (h(i, 4) % 20),
               ['respiratory','cardiology','general'][1 + h(i, 5) % 3],
               ['J06.9','I10','E11.9','K29.7','M54.5'][1 + h(i, 6) % 5],
               CAST((h(i, 7) % 5000000) / 100.0 AS DECIMAL(12,2)),
               CAST((h(i, 7) % 5000000) / 100.0 * (h(i, 8) % 100) / 100 AS DECIMAL(12,2))
        FROM range(?) t(i)""",
    "marriages": """
        SELECT 'J' || i, lpad(CAST(h(i, 1) % 1000 AS VARCHAR), 18, '0'),
               lpad(CAST(h(i, 2) % 1000 AS VARCHAR), 17, '0') || 'X',
               DATE '1980-01-01' + CAST(h(i, 3) % 16000 AS INTEGER),
               CASE WHEN h(i, 4) % 4 = 0
                    THEN DATE '2020-01-01' + CAST(h(i, 5) % 2000 AS INTEGER) END,
               ['110000','120000','131000'][1 + h(i, 6) % 3]
        FROM range(?) t(i)""",
}


def build_city_store(path: Path, seed: int, rows: int) -> None:
    connection = duckdb.connect(str(path))
    try:
        connection.execute(
            f"CREATE OR REPLACE MACRO h(i, k) AS CAST(hash({seed}, i, k) // 2 AS BIGINT)")
        for name, dataset in DATASETS.items():
            connection.execute(create_table_sql(dataset))
            connection.execute(f"INSERT INTO {name} {_FILL[name]}", [rows])
    finally:
        connection.close()


AUDITOR = "auditor"  # a regional authority the test policy lets see everything
OUTSIDER = "outsider"  # a member the test policy grants nothing
PURPOSE = "population-statistics"


def open_policy(member: str = AUDITOR, level: str = "row") -> str:
    """A policy granting one member every column of every dataset, for every purpose."""
    return "".join(
        f'[[rules]]\ndataset = "{name}"\ncolumns = ["*"]\ncallers = ["{member}"]\n'
        f'purposes = ["*"]\nlevel = "{level}"\n\n' for name in DATASETS)


@dataclass
class RunningRegion:
    directory: Path
    trusted: TrustedRegion
    nodes: dict[str, RunningNode]
    coordinator: Coordinator
    central: duckdb.DuckDBPyConnection
    stopped: set[str] = field(default_factory=set)

    @property
    def manifest(self):
        return self.coordinator.manifest

    def ask(self, sql: str, *, purpose: str = PURPOSE, **options):
        return self.coordinator.ask_sql(sql, purpose=purpose, **options)

    def stop_node(self, city: str) -> None:
        self.nodes[city].stop(grace=None)
        self.stopped.add(city)

    def stop(self) -> None:
        self.coordinator.close()
        for city, node in self.nodes.items():
            if city not in self.stopped:
                node.stop(grace=None)
        self.central.close()


def node_config(trusted: TrustedRegion, city: str, database: Path, policy: Path | None,
                **options) -> NodeConfig:
    member = trusted.directory.member(city)
    return NodeConfig(
        city=city, database=database, manifest=trusted.directory.manifest,
        root_public_key=trusted.directory.root_public_key,
        tls_certificate=member / "tls.pem", tls_private_key=member / "tls.key",
        tls_ca=trusted.directory.ca_certificate, signing_key=member / "signing.key",
        policy=policy,
        listen=trusted.endpoint(city), threads=1, **options)


def start_nodes(trusted: TrustedRegion, cities: tuple[str, ...], policy_text: str,
                spark_cities: tuple[str, ...] = (), **options) -> dict[str, RunningNode]:
    """`spark_cities` are served from a local Spark, over Parquet written from their DuckDB
    file as it is now (tests/sparkkit.py)."""
    nodes = {}
    for city in cities:
        policy = trusted.directory.path / f"{city}.policy.toml"
        policy.write_text(policy_text)
        database = trusted.directory.path / f"{city}.duckdb"
        config = node_config(trusted, city, database, policy, **options)
        if city in spark_cities:
            from tests import sparkkit

            locations = sparkkit.write_parquet(database, trusted.directory.path /
                                               f"{city}-parquet")
            config = dataclasses.replace(config, **sparkkit.spark_options(locations))
        nodes[city] = start_node(config)
    return nodes


def start_region(directory: Path, cities: tuple[str, ...], rows: int, seed: int = 1,
                 policy_text: str | None = None, extra_cities: tuple[str, ...] = (),
                 extra_rows: dict[str, list[str]] | None = None,
                 **node_options) -> RunningRegion:
    """Real stores, a real CA, keys and a signed manifest; nodes on free loopback ports with a
    policy (by default: the auditor sees everything); a coordinator acting as the auditor.
    `extra_cities` are in the manifest but get no node (for tests that serve them otherwise).
    `extra_rows` are INSERT statements run on a city's store after it is filled."""
    for index, city in enumerate(cities):
        build_city_store(directory / f"{city}.duckdb", seed * 100 + index, rows)
        if extra_rows and extra_rows.get(city):
            with duckdb.connect(str(directory / f"{city}.duckdb")) as connection:
                for statement in extra_rows[city]:
                    connection.execute(statement)
    central = central_union(directory, cities)
    trusted = init_trusted_region(directory, region="test", cities=cities + extra_cities,
                                  authorities=(AUDITOR, OUTSIDER))
    nodes = start_nodes(trusted, cities, policy_text or open_policy(), **node_options)
    manifest, identity = trusted.directory.open_as(AUDITOR)
    return RunningRegion(directory, trusted, nodes, Coordinator(manifest, identity), central)


def central_union(directory: Path, cities: tuple[str, ...]) -> duckdb.DuckDBPyConnection:
    """One DuckDB holding every city's rows: the oracle. Each city's rows are also kept in a
    schema of its own, for oracles over some of the cities (`oracle_over`)."""
    central = duckdb.connect(str(directory / "central.duckdb"))
    for dataset in DATASETS.values():
        central.execute(create_table_sql(dataset))
    for city in cities:
        central.execute(f"ATTACH '{directory / city}.duckdb' AS src (READ_ONLY)")
        central.execute(f"CREATE SCHEMA city_{city}")
        for name in DATASETS:
            central.execute(f"CREATE TABLE city_{city}.{name} AS SELECT * FROM src.{name}")
            central.execute(f"INSERT INTO {name} SELECT * FROM src.{name}")
        central.execute("DETACH src")
    return central


def oracle_over(central: duckdb.DuckDBPyConnection, cities: tuple[str, ...],
                sql: str) -> list[tuple]:
    """DuckDB's answer to `sql` over the union of only these cities' rows."""
    schema = "only_" + "_".join(cities)
    central.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    for name in DATASETS:
        union = " UNION ALL ".join(f"SELECT * FROM city_{c}.{name}" for c in cities)
        central.execute(f"CREATE OR REPLACE TABLE {schema}.{name} AS {union}")
    central.execute(f"USE central.{schema}")
    try:
        return central.execute(sql).fetchall()
    finally:
        central.execute("USE central.main")


def assert_same_rows(federated: list[tuple], central: list[tuple], ordered: bool) -> None:
    assert len(federated) == len(central), (len(federated), len(central), federated[:5],
                                            central[:5])
    if not ordered:
        federated = sorted(federated, key=comparison_key)
        central = sorted(central, key=comparison_key)
    for got, want in zip(federated, central, strict=True):
        assert len(got) == len(want)
        assert all(same_value(g, w) for g, w in zip(got, want, strict=True)), (got, want)


@functools.cache
def _credentials(region_path: Path, member: str):
    return RegionDirectory(region_path).open_as(member)


def secure_channel(region: RunningRegion, address: str, server_member: str,
                   as_member: str = AUDITOR) -> grpc.Channel:
    """A mutual-TLS channel to a member's server, with `as_member`'s certificate."""
    manifest, identity = _credentials(region.directory, as_member)
    return grpc.secure_channel(address, identity.channel_credentials(),
                               options=channel_options(server_member, manifest.region))


def node_stub(region: RunningRegion, city: str,
              as_member: str = AUDITOR) -> node_pb2_grpc.NodeServiceStub:
    return node_pb2_grpc.NodeServiceStub(
        secure_channel(region, region.trusted.endpoint(city), city, as_member))


def token_for(region: RunningRegion, city: str, plan_bytes: bytes, *, as_member: str = AUDITOR,
              purpose: str = PURPOSE) -> str:
    _, identity = _credentials(region.directory, as_member)
    return mint_token(key=identity.signing_key, kid=identity.kid, caller=identity.member_id,
                      audience=city, purpose=purpose, plan_bytes=plan_bytes,
                      certificate_x5t=identity.certificate_x5t)


def aggregate(region: RunningRegion, city: str, plan_bytes: bytes, *, as_member: str = AUDITOR,
              purpose: str = PURPOSE, stub=None, **call_options) -> node_pb2.AggregateResponse:
    """Call a node's Aggregate as a member would: its certificate, a fresh token."""
    stub = stub or node_stub(region, city, as_member)
    token = token_for(region, city, plan_bytes, as_member=as_member, purpose=purpose)
    return stub.Aggregate(node_pb2.AggregateRequest(plan=plan_bytes),
                          metadata=(("authorization", f"Bearer {token}"),), **call_options)


def config_toml(config: NodeConfig) -> str:
    """A node config file for a config object, as city IT would write it."""
    def toml(value) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str | Path):
            return json.dumps(str(value))
        return repr(value)

    lines = ["[node]"] + [f"{name} = {toml(value)}" for name, value in vars(config).items()
                          if value is not None]
    return "\n".join(lines) + "\n"


def write_process_region(directory: Path, cities: tuple[str, ...], rows: int = 200,
                         policy_text: str | None = None,
                         authorities: tuple[str, ...] = (AUDITOR, OUTSIDER),
                         **options) -> TrustedRegion:
    """A region folder for node processes: each city's store, policy (by default: the auditor
    sees everything) and `<city>.toml` with `options` (start them with
    federation.synthetic.local_region.spawn_node_process)."""
    for index, city in enumerate(cities):
        build_city_store(directory / f"{city}.duckdb", index + 1, rows)
    trusted = init_trusted_region(directory, region="test", cities=cities,
                                  authorities=authorities)
    for city in cities:
        policy = directory / f"{city}.policy.toml"
        policy.write_text(policy_text or open_policy())
        config = node_config(trusted, city, directory / f"{city}.duckdb", policy,
                             memory_limit="256MB", **options)
        (directory / f"{city}.toml").write_text(config_toml(config))
    return trusted


def reflect_v1(channel: grpc.Channel, **request) -> reflection_pb2.ServerReflectionResponse:
    """One `grpc.reflection.v1` request, as a client that asks v1 first sends it. v1's messages
    are v1alpha's field for field (grpc's v1 proto renames only the package), so v1alpha's
    classes encode and decode them."""
    call = channel.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
    (answer,) = call(iter([reflection_pb2.ServerReflectionRequest(**request)]), timeout=10)
    return answer


def reflected_services(channel: grpc.Channel) -> set[str]:
    return {s.name for s in reflect_v1(channel, list_services="").list_services_response.service}


def reflected_file(channel: grpc.Channel, symbol: str) -> descriptor_pb2.FileDescriptorProto:
    """The file declaring `symbol`, as v1 reflection describes it."""
    answer = reflect_v1(channel, file_containing_symbol=symbol)
    assert not answer.HasField("error_response"), answer.error_response
    return descriptor_pb2.FileDescriptorProto.FromString(
        answer.file_descriptor_response.file_descriptor_proto[0])
