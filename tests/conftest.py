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
