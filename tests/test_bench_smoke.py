"""`scripts/bench.py --quick` runs end to end and writes a well-formed report; no timing is
asserted (the machine is shared and noisy)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TARGET_ROWS = 8  # 10M ratio, 1M ratio, 5-city p50 and p99, 8-city p50, throughput ×2, security


@pytest.fixture(scope="module")
def bench_out(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    completed = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench.py"), "--quick", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return out


@pytest.mark.timeout(240)
def test_quick_bench_writes_report_json_and_charts(bench_out: Path):
    report = (bench_out / "REPORT.md").read_text(encoding="utf-8")
    for heading in ("## Targets", "## Federated vs central by rows per city",
                    "## Federated vs central by number of cities", "## Small query latency",
                    "## Throughput", "## Time breakdown", "## Pushdown vs pulling raw rows"):
        assert heading in report
    assert "| nproc |" in report and "duckdb" in report
    assert report.count("**PASS") + report.count("**MISS") >= TARGET_ROWS

    results = json.loads((bench_out / "results.json").read_text())
    assert results["mode"] == "quick"
    assert results["machine"]["nproc"] >= 1
    assert {c["cities"] for c in results["city_sweep"]} == {2, 3, 5, 8}
    assert len({c["rows_per_city"] for c in results["rows_sweep"]}) >= 2
    for comparison in results["rows_sweep"] + results["city_sweep"] + results["naive"]:
        # Tiny cities have groups of fewer than k people, which the nodes withhold.
        assert comparison["results_match"] or comparison["withheld_groups"] > 0, comparison
        assert comparison["federated"]["n"] > 0
    assert results["naive"]
    assert all(t["errors"] == [] for t in results["throughput"])
    assert results["breakdown"]["end_to_end"]["n"] > 0
    node_parts = results["security"]["node_per_request"]
    for part in ("token verification", "replay cache (SQLite commit)", "policy decision",
                 "audit record (build + append, no fsync)", "receipt (sign + encode)"):
        assert node_parts[part]["n"] > 0, part
    assert results["security"]["tls_per_call"]["calls"] > 0
    floor = results["cpu_floor"]
    assert floor["floor_ms"] > 0 and floor["measured_ms"] > 0 and len(floor["per_city_ms"]) == 3
    assert "## The CPU floor of the small query" in report
    security = results["verdicts"][-1]
    assert security["target"].startswith("Security") and security["status"] in ("PASS", "MISS")

    for chart in ("latency_vs_rows.png", "latency_vs_cities.png"):
        data = (bench_out / chart).read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000, chart


@pytest.mark.timeout(240)
def test_quick_bench_leaves_no_node_running(bench_out: Path):
    leftover = subprocess.run(["pgrep", "-f", f"node serve --config {bench_out}"],
                              capture_output=True, text=True)
    assert leftover.stdout.strip() == ""
