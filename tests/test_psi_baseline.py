"""The PSI benchmark helpers run and find the true intersection, ours and OpenMined's; no timing
is asserted (the machine is shared and noisy)."""

from __future__ import annotations

from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


@pytest.fixture
def psi_baseline(monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPTS))
    from benchlib import psi_baseline

    return psi_baseline


def test_cityfed_psi_finds_the_intersection_and_states_its_floor(psi_baseline):
    result = psi_baseline.cityfed_psi(700, 500, 60, workers=2)
    assert result["correct"] and result["intersection"] == 60
    assert result["x25519_ops"] == 2400 and result["bytes_moved"] == 32 * (2 * 700 + 500)
    floor = psi_baseline.floor_seconds(700, 500, workers=2)
    assert floor["x25519_ops"] == 2400 and floor["floor_seconds"] > 0


def test_openmined_psi_finds_the_intersection(psi_baseline):
    result = psi_baseline.openmined_psi(300, 200, 20)
    assert result["raw"]["correct"] and result["raw"]["intersection"] == 20
    assert result["gcs"]["data_structure"] == "gcs" and result["gcs"]["intersection"] >= 20
    assert result["raw"]["bytes_moved"] > result["gcs"]["bytes_moved"] > 0
    assert result["peak_mb"] >= result["rss_before_mb"] > 0
