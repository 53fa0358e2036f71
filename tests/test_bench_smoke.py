"""`scripts/bench.py --quick` runs end to end and writes a well-formed report, and so do the
private path's run (`--quick --only private-10m`) and the private set intersection's (`--quick
--only psi`, at 2,000 identifiers a side); no timing is asserted (the machine is shared and
noisy)."""

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
        # The default policy grants rows: every answer is exact and equals central's.
        assert comparison["results_match"] and not comparison["private"], comparison
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


@pytest.fixture(scope="module")
def private_out(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench-private") / "private"
    completed = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench.py"), "--quick", "--only", "private-10m",
         "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert (out.parent / "tmp").is_dir()  # the data cache goes beside the report, not in it
    return out


@pytest.mark.timeout(240)
def test_private_bench_reports_noisy_answers_their_error_and_floor(private_out: Path):
    report = (private_out / "REPORT.md").read_text(encoding="utf-8")
    for heading in ("## Targets", "## Accuracy of the private answers",
                    "## The private path's floor", "## What the bounded query could cost",
                    "## Pushdown vs pulling raw rows",
                    "## The same questions exact (row grant), same run"):
        assert heading in report
    results = json.loads((private_out / "results.json").read_text())
    assert results["settings"]["policy"] == "demo" and results["settings"]["private"]
    # min and max are refused in a private answer: the global question is asked without them.
    assert {c["query"] for c in results["rows_sweep"]} == {"by_hour", "filtered", "global_sum"}
    for comparison in results["rows_sweep"]:
        assert comparison["private"] and comparison["federated"]["n"] > 0, comparison
        accuracy = comparison["accuracy"]
        assert accuracy["vs_central"]["groups_expected"] > 0
    # A global aggregate is always released: its cells are compared in every answer.
    global_sum = next(c for c in results["rows_sweep"] if c["query"] == "global_sum")
    assert global_sum["accuracy"]["vs_bounded_exact"]["cells"] > 0
    assert results["naive"] and results["naive"][0]["private"]
    assert len(results["private_floor"]) == 3
    assert all(f["floor_ms"] > 0 for f in results["private_floor"])
    # The rank-ordered copy and the DECIMAL clamp must not change what the bounded plan returns.
    assert len(results["layout_trials"]) == 5
    for trial in results["layout_trials"]:
        assert len(trial["same_answer"]) == 3 and all(trial["same_answer"].values()), trial
    for comparison in results["exact_rows_sweep"] + results["exact_naive"]:
        assert comparison["results_match"] and not comparison["private"], comparison
    assert [v["status"] for v in results["verdicts"]] and all(
        v["status"] in ("PASS", "MISS") for v in results["verdicts"])


@pytest.fixture(scope="module")
def psi_out(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench-psi") / "psi"
    completed = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench.py"), "--quick", "--only", "psi",
         "--psi-sizes", "2000", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert (out.parent / "tmp").is_dir()  # the data cache goes beside the report, not in it
    return out


@pytest.mark.timeout(180)
def test_psi_bench_reports_the_real_protocol_its_floor_and_the_library(psi_out: Path):
    report = (psi_out / "REPORT.md").read_text(encoding="utf-8")
    for heading in ("## Targets", "## The real protocol, by size", "## The floor",
                    "## Where the time goes", "## Memory per party",
                    "## The private linkage (match grant)", "## OpenMined's PSI, same run"):
        assert heading in report
    results = json.loads((psi_out / "results.json").read_text())
    assert results["mode"] == "psi-quick"
    (size,) = results["sizes"]
    assert size["n"] == 2000 and size["overlap"] == 200
    for run in size["runs"]:  # the row grant: every count exact, the planted overlap
        assert run["exact"] and run["correct"] and run["count"] == 200, run
        assert run["owner_points"] == run["partner_points"] == 2000
        assert run["bytes_moved"] >= 32 * 3 * 2000
        for party in ("beijing", "tianjin"):  # the node, its fork server and its workers
            use = run["parties"][party]
            assert use["processes"] >= 3 and use["peak_hwm_sum_mb"] > 0
            assert use["cpu_seconds"]["descendants"] > 0
    (private,) = size["private_runs"]
    assert not private["exact"] and private["owner_points"] > 2000
    assert len(size["floors"]) == 2 and size["floor_seconds"] > 0
    assert size["arithmetic"]["correct"] and size["library"]["raw"]["correct"]
    assert [v["status"] for v in results["verdicts"]] and all(
        v["status"] in ("PASS", "MISS") for v in results["verdicts"])


@pytest.mark.timeout(180)
def test_psi_bench_leaves_no_node_running(psi_out: Path):
    leftover = subprocess.run(["pgrep", "-f", f"node serve --config {psi_out.parent}"],
                              capture_output=True, text=True)
    assert leftover.stdout.strip() == ""


@pytest.mark.timeout(120)
def test_token_cost_measures_both_token_layouts():
    completed = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "token_cost.py"), "--cities", "2",
         "--questions", "3", "--mint-rounds", "5"],
        cwd=ROOT, capture_output=True, text=True, timeout=100)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    for line in ("mint 2 single-audience tokens:", "mint 1 token for all 2 cities:",
                 "one question (", "one token for all would save"):
        assert line in completed.stdout
