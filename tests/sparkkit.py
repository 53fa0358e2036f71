"""A region with one city on Spark (a local Spark in the test process, over Parquet written from
that city's DuckDB file) and the others on DuckDB, for the Spark store's tests."""

from __future__ import annotations

import dataclasses
import importlib.util
import shutil
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


def spark_options(locations: dict[str, str]) -> dict:
    return {"store": "spark", "spark_master": "local[2]", "spark_datasets": locations}


def start_mixed_region(directory: Path, cities: tuple[str, ...], rows: int, *,
                       spark_city: str = SPARK_CITY, policy_text: str | None = None,
                       seed: int = 1, **node_options) -> RunningRegion:
    """Like regionkit.start_region, with `spark_city` served from Spark."""
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
            config = dataclasses.replace(config, **spark_options(locations))
        nodes[city] = start_node(config)
    manifest, identity = trusted.directory.open_as(AUDITOR)
    return RunningRegion(directory, trusted, nodes, Coordinator(manifest, identity), central)
