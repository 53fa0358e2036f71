"""bench-results/spark/: REPORT.md and results.json of `scripts/bench.py --store spark`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from benchlib.spark import EMPTY, QUESTIONS, SparkResults
from benchlib.spark import __doc__ as METHOD
from benchlib.stats import ratio

CLUSTER_CORES = (8, 32, 128)


def write_spark_outputs(results: SparkResults, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(
        {**results.to_json(), "model": model(results)}, indent=1, ensure_ascii=False,
        default=str) + "\n")
    (out / "REPORT.md").write_text(markdown(results), encoding="utf-8")


def _versions() -> dict[str, str]:
    try:
        import pyspark
        spark = pyspark.__version__
    except ImportError:
        spark = "not installed"
    try:
        shown = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr
        java = shown.splitlines()[0].split('"')[1]
    except (OSError, IndexError):
        java = "?"
    return {"pyspark": spark, "java": java}


def _ms(value: float) -> str:
    if value != value:  # NaN
        return "—"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _jobs(count: float) -> str:
    return f"{count:g} job" + ("" if count == 1 else "s")


def model(results: SparkResults) -> dict:
    """Fixed cost and scan cost per store, from the empty question and the slope between the
    smallest and largest size: latency ≈ fixed + rows × per-row cost."""
    sizes = sorted({r.rows for r in results.runs})
    found: dict = {"sizes": sizes, "fixed_ms": {}, "per_million_rows_ms": {}}
    small, large = sizes[0], sizes[-1]
    for store in ("duckdb", "spark"):
        found["fixed_ms"][store] = {
            str(rows): round(results.p50(EMPTY.name, store, rows), 2) for rows in sizes}
        if large > small:
            found["per_million_rows_ms"][store] = {
                q.name: round((results.p50(q.name, store, large)
                               - results.p50(q.name, store, small)) / (large - small) * 1e6, 3)
                for q in QUESTIONS}
    return found


def line(results: SparkResults, question: str, store: str, small: int,
         large: int) -> tuple[float, float]:
    """(fixed ms, ms per million rows): the line through a question's p50s at two sizes."""
    low, high = (results.p50(question, store, rows) for rows in (small, large))
    per_row = (high - low) / (large - small)
    return low - per_row * small, per_row * 1e6


def markdown(results: SparkResults) -> str:
    m = results.machine
    versions = _versions()
    sizes = sorted({r.rows for r in results.runs})
    lines = [
        f"# cityfed benchmark: a city on Spark beside a city on DuckDB ({results.mode} run)",
        "",
        f"Run {m.get('started', '')} UTC, {results.seconds / 60:.1f} minutes in all, code at "
        f"{m['code']}.", ""]
    if results.note:
        lines += [f"Note: {results.note}", ""]
    lines += [
        "| nproc | CPU | memory | python | duckdb | pyspark | java | grpcio | load avg at start "
        "→ end |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {m['nproc']} | {m['cpu']} | {m['memory']} | {m['python']} | {m['duckdb']} | "
        f"{versions['pyspark']} | {versions['java']} | {m['grpcio']} | "
        f"{m['load_average_at_start']} → {m.get('load_average_at_end')} |", "",
        *summary(results, sizes),
        "## How it was measured", "",
        " ".join(METHOD.split()), "",
        f"Each question is asked of one city at a time through the authority's coordinator "
        f"(`ask_sql`, mutual TLS, a signed token, the city's policy and audit log, a signed "
        f"receipt), {results.settings['warmup']} unmeasured times on each store, then in "
        f"rounds ({results.settings['rounds']}), the store asked first swapped every round. "
        f"Policy: {results.settings['policy']}, so both answers are exact and must be equal. "
        f"Spark: `spark_master = \"{results.settings['spark_master']}\"` in the node's process; "
        f"DuckDB: `threads = {results.settings['duckdb_threads']}`.", "",
        "| question | SQL |", "|---|---|"]
    lines += [f"| {name} | `{sql}` |" for name, sql in results.settings["questions"].items()]
    lines += ["", "## Answers", ""]
    differ = [x for x in results.matches if not x["equal"]]
    lines.append("Every answer from the Spark city equalled the DuckDB city's, at every size."
                 if not differ else
                 "**Answers differ**: " + ", ".join(f"{x['question']} at {x['rows']:,} rows"
                                                     for x in differ))
    lines += ["", "## Latency by question", "",
              "p50 and p99 in milliseconds, end to end as the asker sees it; the ratio is "
              "Spark's p50 over DuckDB's.", "",
              "| rows | question | DuckDB p50 | DuckDB p99 | Spark p50 | Spark p99 | Spark / "
              "DuckDB | Spark − DuckDB ms |", "|---|---|---|---|---|---|---|---|"]
    for rows in sizes:
        for q in QUESTIONS:
            d = results.run(q.name, "duckdb", rows).samples
            s = results.run(q.name, "spark", rows).samples
            lines.append(f"| {rows:,} | {q.name} | {_ms(d.p50)} | {_ms(d.p99)} | "
                         f"**{_ms(s.p50)}** | {_ms(s.p99)} | {ratio(s.p50, d.p50):.1f}× | "
                         f"{_ms(s.p50 - d.p50)} |")
    lines += private_section(results, sizes)
    lines += fixed_cost_section(results, sizes)
    lines += cluster_section(results, sizes)
    return "\n".join(lines) + "\n"


def summary(results: SparkResults, sizes: list[int]) -> list[str]:
    """The run in a few sentences, every figure from the tables below."""
    equal = all(x["equal"] for x in results.matches)
    verdict = ("every Spark answer equalled the DuckDB answer" if equal
               else "**some answers differ** (see Answers)")
    lines = ["## Summary", "",
             f"- Answers: {verdict}, {len(results.matches)} question × size pairs."]
    for rows in sizes:
        ratios = [ratio(results.p50(q.name, "spark", rows), results.p50(q.name, "duckdb", rows))
                  for q in QUESTIONS]
        by_hour = (results.p50("by_hour", "spark", rows), results.p50("by_hour", "duckdb", rows))
        lines.append(f"- {rows:,} rows: a question on Spark takes {min(ratios):.0f}–"
                     f"{max(ratios):.0f}× its p50 on DuckDB (`by_hour` {_ms(by_hour[0])} ms "
                     f"against {_ms(by_hour[1])} ms).")
    large = sizes[-1]
    empty_s, empty_d = (results.p50(EMPTY.name, store, large) for store in ("spark", "duckdb"))
    lines.append(f"- The fixed cost: a question no row matches takes {_ms(empty_s)} ms on Spark "
                 f"and {_ms(empty_d)} ms on DuckDB (at {large:,} rows); Spark's least job "
                 "costs "
                 + ", ".join(f"{_ms(b['least job (range(2).count())']['p50_ms'])} ms"
                             for b in results.bare)
                 + " in a session of its own. A Spark node starts in "
                 + ", ".join(f"{s['start_ms'] / 1000:.0f} s" for s in results.starts
                             if s["store"] == "spark")
                 + " (a JVM), and its first question takes seconds.")
    if len(sizes) > 1:
        small = sizes[0]
        spark_fixed, spark_per = line(results, "by_hour", "spark", small, large)
        duck_fixed, duck_per = line(results, "by_hour", "duckdb", small, large)
        lines.append(f"- How it enters: `by_hour` costs {_ms(spark_fixed)} ms + "
                     f"{spark_per:.1f} ms per million rows on Spark, {_ms(duck_fixed)} ms + "
                     f"{duck_per:.1f} ms on DuckDB: the fixed part is "
                     f"{ratio(spark_fixed, results.p50('by_hour', 'spark', small)):.0%} of the "
                     f"Spark p50 at {small:,} rows and "
                     f"{ratio(spark_fixed, results.p50('by_hour', 'spark', large)):.0%} at "
                     f"{large:,}; per row, Spark on these two cores is "
                     f"{ratio(spark_per, duck_per):.0f}× slower than DuckDB.")
        private = next(iter(results.settings.get("private_questions", {})), None)
        if private is not None:
            spark, duck = (results.p50(private, store, large) for store in ("spark", "duckdb"))
            lines.append(f"- Private answers cost Spark more: `{private}` takes {_ms(spark)} ms "
                         f"on Spark against {_ms(duck)} ms on DuckDB at {large:,} rows "
                         f"({ratio(spark, duck):.0f}×), since Spark ranks each person's rows at "
                         "every private question where DuckDB stored the rank at load.")
        lines.append("- A cluster divides the per-row part by its cores and leaves the fixed part "
                     "(see What a cluster changes): a city on Spark is for data beyond one "
                     "machine, not for speed on small questions.")
    return [*lines, ""]


def private_section(results: SparkResults, sizes: list[int]) -> list[str]:
    names = list(results.settings.get("private_questions", {}))
    if not names:
        return []
    lines = ["", "## Private answers", "",
             "The same two nodes restarted under the deployed policy (the `aggregate` level: "
             "each person's rows bounded to the policy's rows per person, values clamped, noise "
             "added, groups released by a noisy threshold; a budget large enough for the bench), "
             "asked alternately. A DuckDB node stores each row's per-person rank with the rows "
             "when they are loaded, so bounding is a filter; a Spark node reads the city's "
             "tables as they are and ranks each person's rows (a window over the dataset) at "
             "every private question. The last column says whether both released the same "
             "groups in the last unmeasured answer: a group near the threshold may be released "
             "by one and not the other, since each draws its own noise.", "",
             "| rows | question | DuckDB p50 | DuckDB p99 | Spark p50 | Spark p99 | Spark / "
             "DuckDB | same groups released |", "|---|---|---|---|---|---|---|---|"]
    for rows in sizes:
        for name in names:
            d = results.run(name, "duckdb", rows).samples
            s = results.run(name, "spark", rows).samples
            same = next((g["same_groups"] for g in results.private_groups
                         if (g["rows"], g["question"]) == (rows, name)), None)
            lines.append(f"| {rows:,} | {name} | {_ms(d.p50)} | {_ms(d.p99)} | "
                         f"**{_ms(s.p50)}** | {_ms(s.p99)} | {ratio(s.p50, d.p50):.1f}× | "
                         f"{'yes' if same else 'no' if same is not None else '—'} |")
    lines += ["", "| question | SQL |", "|---|---|"]
    lines += [f"| {name} | `{sql}` |"
              for name, sql in results.settings["private_questions"].items()]
    return lines


def fixed_cost_section(results: SparkResults, sizes: list[int]) -> list[str]:
    lines = ["", "## The fixed cost of a Spark job", "",
             f"**Through the node.** `{EMPTY.name}` ({EMPTY.sql}) matches no row: what is left "
             "is what any question costs on each store before it adds anything up.", "",
             "| rows | DuckDB city p50 | Spark city p50 | Spark's fixed cost over DuckDB's |",
             "|---|---|---|---|"]
    for rows in sizes:
        d, s = (results.p50(EMPTY.name, store, rows) for store in ("duckdb", "spark"))
        lines.append(f"| {rows:,} | {_ms(d)} | {_ms(s)} | **{_ms(s - d)}** |")
    lines += ["", "**Spark alone**, in the bench process (its own local[2] session over the same "
              "Parquet files, no node, no gRPC, no policy): p50 in milliseconds, and the Spark "
              "jobs each run started (a session after the first reuses the bench process's "
              "JVM, so it starts at once). What the node adds to Spark's own time is its "
              "share of the gap between these and the node's p50s above.", "",
              "| rows | session start ms | " + " | ".join(
                  k for k in results.bare[0] if k not in ("rows", "session_start_ms")) + " |"
              if results.bare else "", ]
    if results.bare:
        names = [k for k in results.bare[0] if k not in ("rows", "session_start_ms")]
        lines.append("|---|---|" + "---|" * len(names))
        for bare in results.bare:
            lines.append(f"| {bare['rows']:,} | {_ms(bare['session_start_ms'])} | " + " | ".join(
                f"{_ms(bare[n]['p50_ms'])} ({_jobs(bare[n]['jobs_per_run'])})" for n in names)
                + " |")
    lines += ["", "**Starting a node**, then its first two questions (`tiny`): the Spark node "
              "starts a JVM and its first question compiles and plans cold.", "",
              "| rows | store | listening after ms | first question ms | second question ms |",
              "|---|---|---|---|---|"]
    lines += [f"| {s['rows']:,} | {s['store']} | {_ms(s['start_ms'])} | "
              f"{_ms(s['first_question_ms'])} | {_ms(s['second_question_ms'])} |"
              for s in results.starts]
    lines += ["", "## How the fixed cost enters a question's latency", ""]
    if len(sizes) < 2:
        lines += ["One size only (a quick run): each question's Spark p50 split into the empty "
                  "question's p50 on Spark (the node, the federation path and Spark's fixed "
                  "cost) and the rest:", "",
                  "| rows | question | Spark p50 | of which the empty question's | the rest |",
                  "|---|---|---|---|---|"]
        for rows in sizes:
            fixed = results.p50(EMPTY.name, "spark", rows)
            for q in QUESTIONS:
                total = results.p50(q.name, "spark", rows)
                lines.append(f"| {rows:,} | {q.name} | {_ms(total)} | {_ms(min(fixed, total))} "
                             f"| {_ms(max(0.0, total - fixed))} |")
        return lines
    small, large = sizes[0], sizes[-1]
    lines += [f"Each question's p50 as a line through its p50s at {small:,} and {large:,} rows: "
              "a fixed part (where the line meets zero rows: what the question costs whatever "
              "the data) and a part per million rows. A question with GROUP BY costs Spark "
              "more than one without at any size: its partial aggregates are exchanged between "
              "two stages, each scheduled as tasks. Then the fixed part's share of the Spark "
              "p50 at each size.", "",
              "| question | Spark fixed ms | Spark ms per 1M rows | DuckDB fixed ms | DuckDB ms "
              "per 1M rows | " + " | ".join(f"fixed share at {r:,}" for r in sizes) + " |",
              "|---|---|---|---|---|" + "---|" * len(sizes)]
    for q in QUESTIONS:
        spark_fixed, spark_per = line(results, q.name, "spark", small, large)
        duck_fixed, duck_per = line(results, q.name, "duckdb", small, large)
        shares = [ratio(spark_fixed, results.p50(q.name, "spark", r)) for r in sizes]
        lines.append(f"| {q.name} | **{_ms(spark_fixed)}** | {spark_per:.1f} | "
                     f"{_ms(duck_fixed)} | {duck_per:.1f} | "
                     + " | ".join(f"{share:.0%}" for share in shares) + " |")
    return lines


def cluster_section(results: SparkResults, sizes: list[int]) -> list[str]:
    lines = ["", "## What a cluster changes", ""]
    if len(sizes) < 2:
        return [*lines, "One size only (a quick run): no line to extrapolate from."]
    small, large = sizes[0], sizes[-1]
    fixed_d, d_per = line(results, "by_hour", "duckdb", small, large)
    fixed_s, s_per = line(results, "by_hour", "spark", small, large)
    lines += [
        f"The lines above as a model, for `by_hour`: {_ms(fixed_d)} ms + {d_per:.1f} ms per "
        f"million rows on DuckDB, {_ms(fixed_s)} ms + {s_per:.1f} ms per million rows on Spark, "
        "both on these two cores. On a cluster every executor core reads its share of the "
        "files at once, so the part per row divides by the cores (assumed here, not measured: "
        "a scan with partial aggregates sends back a few dozen groups per task, so there is "
        "little else to wait for), while the fixed part does not: it is the driver's planning "
        "and scheduling and the node's own work, and a Spark Connect round trip to the "
        "cluster's driver comes on top. Predicted `by_hour` p50 at 1×, 10× and 100× the largest "
        "size measured, for a node on DuckDB with 2 cores (one machine; 100× would need a "
        "machine with the disk for it) and for a node on a Spark cluster of 8 to 128 cores with "
        "the fixed part measured here (a real cluster's scheduler and network add to it):", "",
        "| rows | DuckDB, 2 cores | " + " | ".join(
            f"Spark, {c} cores" for c in CLUSTER_CORES) + " |",
        "|---|---|" + "---|" * len(CLUSTER_CORES)]
    for rows in (large, large * 10, large * 100):
        millions = rows / 1e6
        cells = [f"{_ms(fixed_s + millions * s_per * 2 / c)}" for c in CLUSTER_CORES]
        lines.append(f"| {rows:,} | {_ms(fixed_d + millions * d_per)} | " + " | ".join(cells)
                     + " |")
    crossings = []
    for cores in CLUSTER_CORES:
        gain = d_per - s_per * 2 / cores  # ms per million rows a Spark cluster saves
        if gain > 0 and fixed_s > fixed_d:
            crossings.append(f"{cores} cores above about "
                             f"{(fixed_s - fixed_d) / gain:,.0f} million rows")
        elif gain <= 0:
            crossings.append(f"{cores} cores never (Spark's scan on {cores} cores is no faster "
                             "than DuckDB's on 2)")
    if crossings:
        lines += ["", "Where a Spark cluster's `by_hour` would overtake a DuckDB node on two "
                  "cores, by the same lines: " + "; ".join(crossings) + "."]
    lines += ["", "What stays the same on a cluster: the answer (the same checked plan, the "
              "same exact types), the node's checks (token, policy, budget, audit, receipt), "
              "and that the node only reads. What changes: the city's data never has to fit "
              "one machine or be copied into a DuckDB file; a scan's time divides by the "
              "executors; and every question pays a Spark job's fixed cost, so a city on Spark "
              "answers small questions more slowly than one on DuckDB (the empty question), "
              "and since a federated answer waits for its slowest city, a region with one city "
              "on Spark answers no faster than that city's fixed cost."]
    return lines
