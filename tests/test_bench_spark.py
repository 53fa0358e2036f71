"""`scripts/bench.py --quick --store spark` runs end to end: a city on Spark beside the same
rows on DuckDB, equal answers, the fixed cost of a Spark job, and a well-formed report; no
timing is asserted (the machine is shared and noisy)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from federation.synthetic.local_region import spark_missing

ROOT = Path(__file__).resolve().parent.parent
MISSING = spark_missing()

pytestmark = pytest.mark.skipif(
    MISSING is not None,
    reason=f"Spark tests need Java 17 and `pip install -e '.[spark]'` (make setup-spark): "
           f"{MISSING}")


@pytest.fixture(scope="module")
def spark_out(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench-spark") / "spark"
    completed = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench.py"), "--quick", "--store", "spark",
         "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert (out.parent / "tmp").is_dir()  # the data cache goes beside the report, not in it
    return out


@pytest.mark.timeout(360)
def test_spark_bench_compares_the_stores_and_measures_a_jobs_fixed_cost(spark_out: Path):
    report = (spark_out / "REPORT.md").read_text(encoding="utf-8")
    for heading in ("## Answers", "## Latency by question", "## The fixed cost of a Spark job",
                    "## How the fixed cost enters a question's latency",
                    "## What a cluster changes"):
        assert heading in report
    assert "Every answer from the Spark city equalled the DuckDB city's" in report
    results = json.loads((spark_out / "results.json").read_text())
    assert results["mode"] == "spark-quick"
    questions = set(results["settings"]["questions"])
    assert {"by_hour", "filtered", "global", "small", "tiny", "empty"} <= questions
    assert all(m["equal"] for m in results["matches"]) and len(results["matches"]) == len(
        questions)
    measured = {(r["question"], r["store"]) for r in results["runs"]
                if r["n"] > 0 and r["question"] in questions}
    assert measured == {(q, s) for q in questions for s in ("duckdb", "spark")}
    assert {s["store"] for s in results["starts"]} == {"duckdb", "spark"}
    (bare,) = results["bare_spark"]
    assert bare["least job (range(2).count())"]["jobs_per_run"] >= 1
    assert results["model"]["fixed_ms"]["spark"]
    # The deployed policy's private answers on both stores, nodes restarted with it.
    assert "## Private answers" in report
    private = set(results["settings"]["private_questions"])
    assert {"by_hour (private)", "global_sum (private)"} == private
    assert {(r["question"], r["store"]) for r in results["runs"]
            if r["n"] > 0 and r["question"] in private} == {
        (q, s) for q in private for s in ("duckdb", "spark")}
    assert len(results["private_groups"]) == len(private)


@pytest.mark.timeout(360)
def test_spark_bench_leaves_no_node_running(spark_out: Path):
    leftover = subprocess.run(["pgrep", "-f", f"node serve --config {spark_out.parent}"],
                              capture_output=True, text=True)
    assert leftover.stdout.strip() == ""
