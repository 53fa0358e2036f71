"""A region with one city on Spark (a local Spark in the test process, over Parquet written from
that city's DuckDB file) and the others on DuckDB, for the Spark store's tests."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import duckdb
import pytest

from federation.coordination.coordinator import Coordinator
from federation.query.datasets import DATASETS
from node.server import start_node
from tests.regionkit import (
    AUDITOR,
    OUTSIDER,
    RunningRegion,
    build_city_store,
    central_union,
    init_trusted_region,
    node_config,
    open_policy,
)

SKIP_REASON = ("Spark tests need Java 17 and `pip install -e '.[spark]'` (make setup-spark)")
SPARK_CITY = "tianjin"


def spark_available() -> bool:
    return importlib.util.find_spec("pyspark") is not None and shutil.which("java") is not None


needs_spark = pytest.mark.skipif(not spark_available(), reason=SKIP_REASON)
# The stores a test parametrised over them runs against (`ids` are the stores' names).
STORES = ("duckdb", pytest.param("spark", marks=needs_spark))


def on_spark(store: str, *cities: str) -> tuple[str, ...]:
    """The cities to serve from Spark (regionkit's `spark_cities`) when testing `store`."""
    return cities if store == "spark" else ()


def write_parquet(database: Path, folder: Path) -> dict[str, str]:
    """Each standard dataset of a city's DuckDB file as Parquet files, as a city's pipeline
    might leave them; the locations to give `spark_datasets`."""
    folder.mkdir(parents=True, exist_ok=True)
    locations = {}
    with duckdb.connect(str(database), read_only=True) as connection:
        for name, dataset in DATASETS.items():
            columns = ", ".join(f'"{c}"' for c in dataset.column_names)
            target = folder / name
            target.mkdir()
            connection.execute(f"COPY (SELECT {columns} FROM \"{name}\") TO "
                               f"'{target / 'part-0.parquet'}' (FORMAT parquet)")
            locations[name] = str(target / "*.parquet")
    return locations


def spark_options(locations: dict[str, str], remote: str = "") -> dict:
    """A node's settings for a local Spark in its process, or for the Spark Connect server at
    `remote` (`sc://host:port`)."""
    if remote:
        return {"store": "spark", "spark_remote": remote, "spark_datasets": locations}
    return {"store": "spark", "spark_master": "local[2]", "spark_datasets": locations}


_STARTED = re.compile(rb"Spark Connect server started at: [^\s]*:(\d+)")


class ConnectServer:
    """A Spark Connect server (local mode, 2 cores) from the pyspark wheel's own jars, as a
    child process on a free loopback port: no download. Starting one takes 10-20 s on a quiet
    machine, so tests share one per module."""

    def __init__(self, directory: Path, *, start_timeout: float = 180.0) -> None:
        from pyspark.find_spark_home import _find_spark_home

        home = _find_spark_home()
        directory.mkdir(parents=True, exist_ok=True)
        self.log = directory / "connect-server.log"
        settings = {
            "spark.connect.grpc.binding.address": "127.0.0.1",
            "spark.connect.grpc.binding.port": "0",
            "spark.ui.enabled": "false",
            "spark.sql.shuffle.partitions": "4",
            "spark.driver.extraJavaOptions": f"-Djava.io.tmpdir={directory}",
            "spark.local.dir": str(directory),
        }
        command = [f"{home}/bin/spark-submit", "--master", "local[2]", "--name",
                   "cityfed-tests", "--class",
                   "org.apache.spark.sql.connect.service.SparkConnectServer"]
        for key, value in settings.items():
            command += ["--conf", f"{key}={value}"]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, "SPARK_HOME": home}, start_new_session=True)
        deadline = time.monotonic() + start_timeout
        while True:
            found = _STARTED.search(self.log.read_bytes())
            if found:
                self.port = int(found.group(1))
                break
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the Spark Connect server did not start: see {self.log}")
            time.sleep(0.2)

    @property
    def address(self) -> str:
        return f"sc://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def start_mixed_region(directory: Path, cities: tuple[str, ...], rows: int, *,
                       spark_city: str = SPARK_CITY, policy_text: str | None = None,
                       seed: int = 1, spark_remote: str = "",
                       **node_options) -> RunningRegion:
    """Like regionkit.start_region, with `spark_city` served from Spark: a local Spark in the
    process, or the Spark Connect server at `spark_remote`."""
    for index, city in enumerate(cities):
        build_city_store(directory / f"{city}.duckdb", seed * 100 + index, rows)
    locations = write_parquet(directory / f"{spark_city}.duckdb", directory / "parquet")
    central = central_union(directory, cities)
    trusted = init_trusted_region(directory, region="test", cities=cities,
                                  authorities=(AUDITOR, OUTSIDER))
    nodes = {}
    for city in cities:
        policy = trusted.directory.path / f"{city}.policy.toml"
        policy.write_text(policy_text or open_policy())
        config = node_config(trusted, city, directory / f"{city}.duckdb", policy,
                             **node_options)
        if city == spark_city:
            config = dataclasses.replace(config, **spark_options(locations, spark_remote))
        nodes[city] = start_node(config)
    manifest, identity = trusted.directory.open_as(AUDITOR)
    return RunningRegion(directory, trusted, nodes, Coordinator(manifest, identity), central)
