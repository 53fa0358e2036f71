"""What surrounds the Spark store: CI installs Java 17 and the spark extra, `make setup` stays
without pyspark, and a city of a local region (the demo's) can be switched to Spark: its
datasets written as Parquet holding exactly its rows, its config reading them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from federation.query.datasets import DATASETS
from federation.synthetic import RegionScale
from federation.synthetic.local_region import (
    SPARK_MASTER,
    serve_from_spark,
    store_of,
    write_region,
)
from node.config import load_config

ROOT = Path(__file__).resolve().parent.parent


def make_dry_run(target: str) -> str:
    # -W: every target counts as out of date, so -n prints what a fresh machine would run.
    completed = subprocess.run(["make", "-n", "-W", "pyproject.toml", target], cwd=ROOT,
                               capture_output=True, text=True, timeout=30, check=True)
    return completed.stdout


def test_make_setup_leaves_pyspark_out_and_setup_spark_installs_it():
    assert "spark" not in make_dry_run("setup")
    assert ".venv/bin/pip install --quiet -e '.[dev,spark]'" in make_dry_run("setup-spark")


def fake_tools(folder: Path, java_version: str | None) -> Path:
    """A PATH of stand-ins recording their calls, with the few real tools .ci/run needs."""
    folder.mkdir()
    calls = folder / "calls"
    for tool in ("sed", "dirname", "readlink"):
        (folder / tool).symlink_to(subprocess.run(["which", tool], capture_output=True,
                                                  text=True, check=True).stdout.strip())
    for tool in ("apt-get", "make"):
        (folder / tool).write_text(f'#!/bin/bash\necho "{tool} $*" >> {calls}\n')
        (folder / tool).chmod(0o755)
    if java_version:
        (folder / "java").write_text(
            f'#!/bin/bash\necho \'openjdk version "{java_version}" 2025-04-15\' >&2\n')
        (folder / "java").chmod(0o755)
    return calls


@pytest.mark.parametrize(("java_version", "installs"),
                         [(None, True), ("11.0.2", True), ("17.0.15", False)])
def test_ci_installs_java_17_when_missing_or_older(tmp_path, java_version, installs):
    calls = fake_tools(tmp_path / "bin", java_version)
    completed = subprocess.run(["/bin/bash", str(ROOT / ".ci" / "run")], cwd=tmp_path,
                               env={"PATH": str(tmp_path / "bin"), "HOME": str(tmp_path)},
                               capture_output=True, text=True, timeout=30)
    assert completed.returncode == 0, completed.stderr
    lines = calls.read_text().splitlines()
    install = ("apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless"
               in lines)
    assert install is installs
    # The spark extra goes in before the README's test command runs.
    assert lines[-2:] == ["make setup setup-spark", "make test"]


@pytest.fixture(scope="module")
def demo_region(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("demo-region")
    write_region(directory, scale=RegionScale(people_per_city=300, trips_per_city=2_500,
                                              visits_per_city=400),
                 cities=("beijing", "tianjin"))
    return directory


def test_a_city_served_from_spark_reads_exactly_its_rows_as_parquet(demo_region: Path):
    locations = serve_from_spark(demo_region, "beijing", rows_per_file=1_000)
    config = load_config(demo_region / "beijing.toml")
    assert (config.store, config.spark_master, config.spark_remote) == ("spark", SPARK_MASTER, "")
    assert config.spark_datasets == locations and set(locations) == set(DATASETS)
    assert len(list(Path(locations["transit_trips"]).parent.glob("*.parquet"))) >= 2
    connection = duckdb.connect()
    connection.execute(f"ATTACH '{demo_region / 'beijing.duckdb'}' AS city (READ_ONLY)")
    for name, location in locations.items():
        columns = ", ".join(f'"{c}"' for c in DATASETS[name].column_names)
        stored = connection.execute(
            f"SELECT {columns} FROM city.{name} EXCEPT ALL "
            f"SELECT {columns} FROM read_parquet('{location}')").fetchall()
        extra = connection.execute(
            f"SELECT {columns} FROM read_parquet('{location}') EXCEPT ALL "
            f"SELECT {columns} FROM city.{name}").fetchall()
        assert stored == [] and extra == [], name
        parquet_columns = [c[0] for c in connection.execute(
            f"DESCRIBE SELECT * FROM read_parquet('{location}')").fetchall()]
        assert parquet_columns == list(DATASETS[name].column_names)  # no hidden rank column
    assert store_of(demo_region, "beijing") == f"spark ({SPARK_MASTER})"
    assert store_of(demo_region, "tianjin") == "duckdb"
    # Switched again (a demo run over an old folder): one store line, one datasets table.
    serve_from_spark(demo_region, "beijing", rows_per_file=1_000)
    text = (demo_region / "beijing.toml").read_text()
    assert text.count("store =") == 1 and text.count("[node.spark_datasets]") == 1


def test_the_demo_says_it_runs_on_duckdb_and_how_to_enable_spark(tmp_path):
    script = (f"import sys; sys.path.insert(0, {str(ROOT / 'scripts')!r}); import demo; "
              f"demo.choose_stores(__import__('pathlib').Path({str(tmp_path)!r}), 'no')")
    completed = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                               text=True, timeout=60, env={**os.environ, "COLUMNS": "200"})
    assert completed.returncode == 0, completed.stderr
    said = " ".join(completed.stdout.split())
    assert "All five cities run on DuckDB" in said and "make setup-spark" in said


def test_the_readmes_spark_node_example_is_a_config_that_loads(tmp_path):
    readme = (ROOT / "README.md").read_text()
    (example,) = [block for block in re.findall(r"```toml\n(.*?)```", readme, re.S)
                  if 'store = "spark"' in block]
    (tmp_path / "beijing.toml").write_text(example)
    config = load_config(tmp_path / "beijing.toml")
    assert config.store == "spark" and config.spark_remote.startswith("sc://")
    assert config.spark_datasets["population"] == "table:cityfed.population"
    assert "marriages" not in config.spark_datasets  # one not listed is absent
