from __future__ import annotations

import pytest

from tests.regionkit import RunningRegion, start_region

CITIES = ("beijing", "tianjin", "langfang")


@pytest.fixture(scope="session")
def region(tmp_path_factory) -> RunningRegion:
    """Three real nodes on port 0 over real DuckDB files, a coordinator, and the central oracle."""
    running = start_region(tmp_path_factory.mktemp("region"), CITIES, rows=3_000)
    yield running
    running.stop()


@pytest.fixture(scope="session")
def spark_region(tmp_path_factory) -> RunningRegion:
    """The same cities with tianjin served from a local Spark (tests/sparkkit.py), shared by
    every module that asks a Spark city what it would ask a DuckDB one."""
    from tests import sparkkit

    if not sparkkit.spark_available():
        pytest.skip(sparkkit.SKIP_REASON)
    running = sparkkit.start_mixed_region(tmp_path_factory.mktemp("spark-region"), CITIES,
                                          rows=1_500)
    yield running
    running.stop()
