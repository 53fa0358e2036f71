"""REPORT.md, results.json and the two charts."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from benchlib.breakdown import BOUNDED, EXACT_REFERENCE, PRIVATE_STEPS
from benchlib.floor import __doc__ as FLOOR_METHOD
from benchlib.measure import Comparison
from benchlib.private import LAYOUTS, LayoutTrial, layout_floors
from benchlib.private import __doc__ as PRIVATE_FLOOR_METHOD
from benchlib.queries import SMALL, TINY, compared
from benchlib.results import BenchResults
from benchlib.security import __doc__ as SECURITY_METHOD
from benchlib.verdicts import Verdict, verdicts
from benchlib.workdir import BENCH_DEMO_POLICY
from federation.synthetic.local_region import DEMO_POLICY

ROWS_CHART, CITIES_CHART = "latency_vs_rows.png", "latency_vs_cities.png"
LAYOUT_METHOD = LayoutTrial.__doc__ + (
    " One thread, the nodes' setting; p50 of the runs, in this process. Both changes keep the "
    "answer (the same rows are read, the clamped values are equal): the last column checks "
    "that the bounded runs returned the same rows. Where the node's own file is already in rank "
    "order, or its SQL already clamps without DOUBLE (nothing to rewrite: —), the node has made "
    "that change itself.")


def write_outputs(results: BenchResults, out: Path) -> list[Verdict]:
    out.mkdir(parents=True, exist_ok=True)
    checked = verdicts(results)
    (out / "results.json").write_text(json.dumps(
        {**results.to_json(), "verdicts": [v.__dict__ for v in checked]}, indent=1,
        ensure_ascii=False, default=str) + "\n")
    charts = set()  # a chart of one point says nothing: drawn only for a sweep
    if len({c.rows_per_city for c in results.rows_sweep}) > 1:
        chart(results.rows_sweep, "rows_per_city", "rows per city (5 cities)",
              1.5 if results.private else 1.10, out / ROWS_CHART, naive=results.naive,
              log_x=True)
        charts.add(ROWS_CHART)
    if len({c.cities for c in results.city_sweep}) > 1:
        chart(results.city_sweep, "cities", "cities", 1.30, out / CITIES_CHART)
        charts.add(CITIES_CHART)
    (out / "REPORT.md").write_text(markdown(results, checked, charts), encoding="utf-8")
    return checked


# --- charts -----------------------------------------------------------------------------------

def chart(comparisons: Sequence[Comparison], axis: str, label: str, limit: float, path: Path,
          naive=(), log_x: bool = False) -> None:
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(8, 8), sharex=True,
                                         gridspec_kw={"height_ratios": [3, 2]})
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for colour, query in zip(colours, dict.fromkeys(c.query for c in comparisons),
                             strict=False):
        points = sorted((c for c in comparisons if c.query == query),
                        key=lambda c: getattr(c, axis))
        xs = [getattr(c, axis) for c in points]
        top.plot(xs, [c.federated.p50 for c in points], "o-", color=colour,
                 label=f"{query} federated")
        top.plot(xs, [c.central.p50 for c in points], "s--", color=colour,
                 label=f"{query} central")
        bottom.plot(xs, [c.ratio for c in points], "o-", color=colour, label=query)
    naive_points = sorted(naive, key=lambda n: getattr(n, axis))
    if naive_points:
        top.plot([getattr(n, axis) for n in naive_points], [n.naive.p50 for n in naive_points],
                 "^:", color="black", label=f"{naive_points[0].query} naive (pull rows)")
    bottom.axhline(limit, color="red", linestyle=":", label=f"target {limit:.2f}×")
    bottom.axhline(1.0, color="grey", linewidth=0.8)
    top.set_ylabel("p50 latency (ms)")
    top.set_yscale("log")
    top.set_title(f"Federated vs central by {label}")
    bottom.set_ylabel("federated p50 / central p50")
    bottom.set_xlabel(label)
    if log_x:
        top.set_xscale("log")
    else:
        bottom.set_xticks(sorted({getattr(c, axis) for c in comparisons}) or [0])
    for axes in (top, bottom):
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


# --- markdown ---------------------------------------------------------------------------------

def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return [*lines, ""]


def same_answer(result) -> str:
    """An exact answer must equal the reference; a private one says how far it was."""
    accuracy = getattr(result, "accuracy", None)
    if accuracy is not None:
        error = accuracy.vs_central.summary()
        noise = accuracy.vs_bounded.summary()
        return (f"private: error median {_pct(error['median_relative_error'])} "
                f"(noise alone {_pct(noise['median_relative_error'])})")
    error = getattr(result, "error", None)
    if error is not None:
        summary = error.summary()
        return f"private: error median {_pct(summary['median_relative_error'])}"
    return "yes" if result.results_match else "**NO**"


def _pct(value: float) -> str:
    """A share as a percentage, to three significant figures (0.0021% stays visible)."""
    return f"{value * 100:.3g}%" if value == value else "—"


def _ms(value: float) -> str:
    return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"


def markdown(results: BenchResults, checked: list[Verdict], charts: set[str]) -> str:
    lines = [f"# cityfed benchmark ({results.mode} run)", ""]
    if results.quick or results.mode == "private-quick":
        lines += ["> Quick run: sizes and repetitions are far below the targets'; the verdicts "
                  "below are computed at the sizes shown and are indicative only.", ""]
    lines += _machine(results)
    lines += ["## Targets", ""]
    lines += table(("target", "goal", "measured", "verdict", "measured at"),
                   ((v.target, v.goal, v.measured, f"**{v.status}**", v.scale) for v in checked))
    lines += _private_summary(results)
    lines += _method(results)
    lines += _comparisons("Federated vs central by rows per city (5 cities)", results.rows_sweep)
    if ROWS_CHART in charts:
        lines += [f"![latency vs rows]({ROWS_CHART})", ""]
    lines += _private_accuracy(results)
    lines += _private_floor(results)
    lines += _layout_trials(results)
    if results.city_sweep:
        lines += _comparisons("Federated vs central by number of cities", results.city_sweep)
    if CITIES_CHART in charts:
        lines += [f"![latency vs cities]({CITIES_CHART})", ""]
    if results.latency:
        lines += _latency(results)
    if results.throughput:
        lines += _throughput(results)
    lines += _breakdown(results)
    lines += _security(results)
    lines += _floor(results)
    lines += _naive("Pushdown vs pulling raw rows", results.naive)
    lines += _exact_context(results)
    lines += _noise(results)
    return "\n".join(lines) + "\n"


def _machine(results: BenchResults) -> list[str]:
    m = results.machine
    note = [f"Note: {results.note}", ""] if results.note else []
    return [f"Run {results.started} UTC, {results.seconds / 60:.1f} minutes in all, code at "
            f"{m['code']}.", "", *note,
            *table(("nproc", "CPU", "memory", "python", "duckdb", "grpcio", "pyarrow",
                    "load avg at start → end"),
                   [(m["nproc"], m["cpu"], m["memory"], m["python"], m["duckdb"], m["grpcio"],
                     m["pyarrow"], f"{m['load_average_at_start']} → "
                                   f"{m.get('load_average_at_end', '?')}")])]


_EXACT_TEXT = ("Each node applies a bench policy granting the same transit_trips columns at "
               "row level: answers are exact over every row and must equal central's.")
def _demo_text() -> str:
    deployed = tomllib.loads(DEMO_POLICY)["privacy"]
    bench = tomllib.loads(BENCH_DEMO_POLICY)["privacy"]
    return (
        "Each node applies the deployed demo policy "
        "(`federation.synthetic.local_region.DEMO_POLICY`: "
        "transit_trips at the `aggregate` level, so every answer is differentially private: "
        "each person's rows (an anonymous card's, where no person is named) beyond its first "
        f"{bench['transit_trips']['max_rows_per_person']} left out, sums clamped to the "
        "declared bounds, OpenDP discrete Laplace noise, groups released by a noisy threshold, "
        f"ε {deployed['epsilon_per_question']:g} and δ {deployed['delta_per_question']:g} "
        "charged per question) with one change: the budget per period is "
        f"ε {bench['epsilon_per_period']:g} and δ {bench['delta_per_period']:g} instead of "
        f"ε {deployed['epsilon_per_period']:g} and δ {deployed['delta_per_period']:g}, since the "
        "bench asks thousands of questions as one caller in one day (everything per question as "
        "deployed). Between series of questions the bench empties the nodes' budget ledgers, "
        "as a new period would.")


_EXACT_TEXT = ("Each node applies a bench policy granting the same transit_trips columns at "
               "row level: answers are exact over every row and must equal central's.")
POLICY_TEXT = {
    "demo": _demo_text(),
    "exact": _EXACT_TEXT + " (`--policy exact`)",
    "no-k": _EXACT_TEXT + " (`--policy no-k`, the old name of `--policy exact`)",
}


def _method(results: BenchResults) -> list[str]:
    s = results.settings
    lines = ["## Method", "",
             f"- Nodes: one real `python -m cli node serve` process per city on loopback, "
             f"`threads = {s['node_threads']}`, `memory_limit = \"{s['node_memory']}\"` per node "
             f"({s['node_threads_reason']}). Every call goes over mutual TLS with a signed "
             "request token per city. The questions are asked as the region's authority for "
             "the purpose `transit-planning`. " + POLICY_TEXT[s["policy"]],
             "- Central: one DuckDB file with the union of the same cities' `transit_trips` "
             "(ATTACH each city read-only, INSERT; built before the nodes start), opened "
             "read-only by the bench process itself with threads = the nodes' total "
             "(cities × node threads), and run with plain `execute().fetchall()` (no policy, no "
             "privacy: every row, exact).",
             f"- Federated and central runs alternate (the first of the pair swaps every round) "
             f"after {s['warmup']} warm-up run(s) of each; rounds per size: "
             f"{s['rounds']}. Federated time is `Coordinator.ask_sql` end to end (parse, "
             "fan-out, merge, finish) with one Coordinator reused for the series.",
             "- Data: `federation.synthetic.generate_region` (5 member cities); the 6th–8th "
             "cities (tangshan, cangzhou, chengde) are byte copies of beijing, tianjin and "
             "shijiazhuang's stores. Cached by scale under the work directory.",
             "- Questions:", ""]
    asked = (*compared(results.private), *((SMALL,) if results.latency or results.breakdown
                                           else ()))
    lines += [f"  - `{q.name}`: `{q.sql}`" for q in asked]
    if results.private:
        lines += ["", "  `min` and `max` are refused in a private answer (each would release one "
                      "person's exact value), so the private runs ask `global_sum`, the global "
                      "question without them, in place of `global`."]
    lines += ["", *table(("data set", "cities", "rows per city", "prepared in", "cached"),
                         ((d["key"], d["cities"], f"{d['rows_per_city']:,}",
                           f"{d['seconds']:.0f} s", "yes" if d["reused"] else "no")
                          for d in results.data))]
    return lines


def _comparisons(title: str, comparisons: list[Comparison]) -> list[str]:
    rows = [(c.query, c.cities, f"{c.rows_per_city:,}", c.federated.n,
             _ms(c.federated.p50), _ms(c.federated.p99), _ms(c.central.p50),
             _ms(c.central.p99), f"{c.ratio:.2f}×", same_answer(c))
            for c in sorted(comparisons, key=lambda c: (c.rows_per_city, c.cities, c.query))]
    return [f"## {title}", "", *table(
        ("query", "cities", "rows/city", "rounds", "fed p50 ms", "fed p99 ms", "central p50 ms",
         "central p99 ms", "ratio of p50", "same answer"), rows)]


def _latency(results: BenchResults) -> list[str]:
    rows = [(lat.query, lat.path, lat.cities, lat.samples.n, _ms(lat.samples.p50),
             _ms(lat.samples.p99), _ms(lat.samples.mean)) for lat in results.latency]
    return [f"## Small query latency ({results.latency_rows:,} rows per city)", "",
            f"One question at a time, after warm-up. The targets are checked on `{SMALL.name}`; "
            f"`{TINY.name}` (`{TINY.sql}`) shows the fixed cost of a federated question. With 1 "
            "city the node has a core to itself, as each city would on its own machine; with 5 "
            "or 8, all node processes and the coordinator share this machine's cores. Central "
            "runs are for context only.", "",
            *table(("query", "path", "cities", "runs", "p50 ms", "p99 ms", "mean ms"), rows)]


def _throughput(results: BenchResults) -> list[str]:
    cores = results.machine["nproc"] or 1
    rows = []
    for t in results.throughput:
        cpu = t.client_cpu_ms_per_query + t.node_cpu_ms_per_query
        rows.append((t.query, t.mode, t.clients, t.queries, f"{t.qps:.0f}", _ms(t.latency.p50),
                     _ms(t.latency.p99), f"{t.client_cpu_ms_per_query:.2f}",
                     f"{t.node_cpu_ms_per_query:.2f}", f"{cores * 1000 / cpu:.0f}",
                     len(t.errors)))
    return ["## Throughput", "",
            f"5 cities × {results.latency_rows:,} rows; the clients are threads of "
            "the bench process. CPU ms per question is measured from the process clocks "
            "(client: this process; nodes: all node processes). The CPU-bound ceiling is "
            f"{cores} cores × 1000 / (client + node CPU ms per question).", "",
            *table(("query", "coordinators", "clients", "questions", "q/s", "p50 ms", "p99 ms",
                    "client CPU ms/q", "node CPU ms/q (all cities)", "CPU-bound ceiling q/s",
                    "errors"), rows)]


def _breakdown(results: BenchResults) -> list[str]:
    b = results.breakdown
    if b is None:
        return []
    private_note = (" Under this private policy the node steps are a private answer's; the "
                    "exact plan's DuckDB run is timed beside them for comparison and left out "
                    "of the sum." if b.private else "")
    stage_rows = [(f"coordinator: `{name}`" + (" (sum over cities, run in parallel)"
                                                if name in b.parallel_stages else ""),
                   _ms(b.coordinator[name].p50), _ms(b.coordinator[name].p99))
                  for name in b.coordinator]
    stage_rows.append(("the rest: fan-out to the nodes and back (gRPC over mutual TLS, node "
                       "work, waiting for the slowest city, and the parallel stages above)",
                       _ms(b.fan_out.p50), _ms(b.fan_out.p99)))
    stage_rows.append(("**end to end**", _ms(b.end_to_end.p50), _ms(b.end_to_end.p99)))
    node_rows = [(f"node: {name}", _ms(s.p50), _ms(s.p99)) for name, s in b.node.items()]
    node_rows.append(("**node work per city (sum of p50s)**", _ms(b.node_p50_per_city), ""))
    node_rows.append((f"GetNodeInfo to all {b.cities} cities at once with `.future()` "
                      "(gRPC floor over mutual TLS, no query)",
                      _ms(b.transport_floor.p50), _ms(b.transport_floor.p99)))
    node_rows.append(("the same from a pool of long-lived threads with blocking calls (no "
                      "channel-spin thread started per call)",
                      _ms(b.transport_floor_pooled.p50), _ms(b.transport_floor_pooled.p99)))
    return [f"## Time breakdown of the small query ({b.cities} cities × "
            f"{b.rows_per_city:,} rows)", "",
            "Coordinator stages are timed on the real `Coordinator.ask_sql` path by wrapping "
            "the functions it calls; the fan-out is what remains. The node steps are what "
            "`NodeServicer.Aggregate` does, run in the bench process on a snapshot copy of each "
            "city's file (one city at a time, so no CPU contention)." + private_note, "",
            "A function called once per city (`mint_token`, `verify_receipt`) counts with the sum "
            "of its calls.",
            "",
            *table(("stage", "p50 ms", "p99 ms"), stage_rows),
            *table(("node-side step (per city)", "p50 ms", "p99 ms"), node_rows),
            f"CPU per question, asked one at a time: coordinator process "
            f"{b.client_cpu_ms:.2f} ms, all {b.cities} node processes together "
            f"{b.node_cpu_ms:.2f} ms ({b.node_cpu_ms / b.cities:.2f} ms per node against "
            f"{b.node_p50_per_city:.2f} ms of node-side steps measured in process), "
            f"{b.client_cpu_ms + b.node_cpu_ms:.2f} ms in all: on "
            f"{results.machine['nproc']} cores no question can finish in less than "
            f"{(b.client_cpu_ms + b.node_cpu_ms) / (results.machine['nproc'] or 1):.2f} ms.", ""]


def _floor(results: BenchResults) -> list[str]:
    floor = results.floor
    if floor is None:
        return []
    rows = [(part, _ms(ms), _ms(ms * floor.cities)) for part, ms in floor.per_city.items()]
    rows += [(f"**the floor** ({floor.cities} cities)", "", _ms(floor.floor_ms)),
             ("measured: coordinator process + all nodes, questions asked one at a time", "",
              _ms(floor.measured_ms)),
             ("cityfed's own work and the cold-cache premium: the difference", "",
              _ms(floor.own_ms))]
    return ["## The CPU floor of the small query", "",
            " ".join(FLOOR_METHOD.split("\n\n")[1].split()), "",
            *table(("part", "CPU ms per city", f"CPU ms per question ({floor.cities} cities)"),
                   rows),
            f"On these {floor.cores} cores, shared by the coordinator and every node, the floor "
            f"alone keeps a question above {floor.fastest_ms:.2f} ms and the region below "
            f"{floor.most_per_second:.0f} questions a second, whatever cityfed's own share.", ""]


def _naive(title: str, naive) -> list[str]:
    if not naive:
        return []
    rows = [(n.query, n.cities, f"{n.rows_per_city:,}", ", ".join(n.columns),
             _ms(n.federated.p50), _ms(n.naive.p50), _ms(n.fetch.p50), _ms(n.transfer.p50),
             _ms(n.aggregate.p50), f"{n.raw_bytes / 1e6:,.1f} MB", f"{n.answer_bytes:,} B",
             f"{n.gain:.1f}×", same_answer(n))
            for n in sorted(naive, key=lambda n: n.rows_per_city)]
    return [f"## {title}", "",
            "Naive path (measured in process, nodes have no raw-row RPC by design): fetch the "
            "needed columns from each city's snapshot to Arrow, write them to IPC bytes and read "
            "them back (a floor for the transfer, no network), aggregate the concatenation in "
            "an in-memory DuckDB with the nodes' total thread count. Pushdown gain = naive p50 "
            "/ federated p50.", "",
            *table(("query", "cities", "rows/city", "columns pulled", "federated p50 ms",
                    "naive p50 ms", "fetch", "transfer", "aggregate", "raw bytes moved",
                    "partials moved", "pushdown gain", "same answer"), rows)]


def _noise(results: BenchResults) -> list[str]:
    rows = [(n.section, f"{n.seconds:.0f}", f"{n.bench_cores:.2f}", f"{n.other_cores:.2f}",
             f"{n.steal_cores:.2f}") for n in results.noise]
    return ["## Machine load during each section", "",
            f"CPU in use, in cores (this machine has {results.machine['nproc']}), from "
            "/proc/stat and the bench's own process clocks: by the benchmark (bench process and "
            "its nodes), by every other process on the machine, and stolen by the hypervisor. "
            "Figures from a section where others used a large share are noisy; the "
            "federated/central ratios are less affected than the absolute latencies, since "
            "the two sides alternate.", "",
            *table(("section", "seconds", "bench cores", "other processes' cores",
                    "steal cores"), rows)]


def _security(results: BenchResults) -> list[str]:
    costs = results.security
    if costs is None:
        return []
    rows = [(f"coordinator, per question: `{name}`" + (
                f" (sum over {costs.cities} cities, run in parallel; the critical path counts "
                "one city's share)" if name in costs.parallel else ""), _ms(s.p50), _ms(s.p99))
            for name, s in costs.coordinator.items()]
    rows += [(f"node, per request: {name}", _ms(s.p50), _ms(s.p99))
             for name, s in costs.node.items()]
    if costs.tls:
        tls = costs.tls
        rows.append((f"per call to a city: mutual TLS over plaintext, on an open connection "
                     f"({tls.plaintext_wall_ms:.3f} → {tls.tls_wall_ms:.3f} ms a call; CPU of "
                     f"client and server {tls.plaintext_cpu_ms:.3f} → {tls.tls_cpu_ms:.3f} ms; "
                     f"medians of {tls.calls} calls each)", _ms(tls.wall_ms), ""))
    rows.append(("**on the critical path (coordinator + one node)**",
                 _ms(costs.critical_path_ms), ""))
    rows.append((f"CPU per question over {costs.cities} cities", _ms(costs.cpu_ms), ""))
    rows += [(part, note, "") for part, note in costs.notes.items()]
    method = " ".join(SECURITY_METHOD.split("\n\n")[1].split())
    return ["## Security overhead", "", method, "",
            *table(("part", "p50 ms", "p99 ms"), rows)]


def _private_accuracy(results: BenchResults) -> list[str]:
    private = [c for c in {id(c): c for c in results.rows_sweep + results.city_sweep}.values()
               if c.accuracy is not None]
    if not private:
        return []
    rows = []
    for c in sorted(private, key=lambda c: (c.rows_per_city, c.cities, c.query)):
        central, noise = c.accuracy.vs_central.summary(), c.accuracy.vs_bounded.summary()
        within = noise["within_stated_interval"]
        rows.append((c.query, c.cities, f"{c.rows_per_city:,}", noise["cells"],
                     _pct(central["median_relative_error"]), _pct(central["max_relative_error"]),
                     _pct(noise["median_relative_error"]), _pct(noise["p95_relative_error"]),
                     _pct(noise["max_relative_error"]),
                     f"{noise['groups_missing']} of {noise['groups_expected']}",
                     "—" if within is None else f"{within:.1%}"))
    r = private[0].accuracy.max_rows_per_person
    return ["## Accuracy of the private answers", "",
            "Every timed private answer is compared, after the clock stops, with two exact "
            "answers from the central file: over every row (what central returns: the error "
            "is noise plus contribution bounding), and over only what a private answer reads, "
            f"each person's (or anonymous card's) first {r} rows in its city's random order, "
            "fares clamped to the "
            "declared bounds (the noise alone, which the ± half-widths the answer states are "
            "meant to cover at 95%). Relative error = "
            "|private − exact| / |exact| per cell (a group's count, sum or average). A group "
            "the cities did not release (its noisy count below the threshold) is counted as "
            "not released, not as an error; one that only some cities released sums fewer "
            "cities than the reference, which shows as error.", "",
            *table(("query", "cities", "rows/city", "cells", "error vs central: median",
                    "max", "noise alone: median", "p95", "max",
                    "groups not released", "within stated ±"), rows)]


def _private_floor(results: BenchResults) -> list[str]:
    if not results.private_floor:
        return []
    central = {(c.query, c.rows_per_city): c for c in results.rows_sweep}
    rows = []
    for f in results.private_floor:
        c = central.get((f.query, f.rows_per_city))
        steps = f.steps_sum_ms
        rows.append((f.query, f"{f.rows_per_city:,}", _ms(steps[BOUNDED]),
                     _ms(steps[EXACT_REFERENCE]),
                     _ms(sum(v for k, v in steps.items() if k not in (BOUNDED, EXACT_REFERENCE))),
                     _ms(f.bounded_floor_ms), _ms(f.floor_ms),
                     _ms(c.central.p50) if c else "—",
                     f"{f.floor_ms / c.central.p50:.2f}×" if c else "—",
                     _ms(c.federated.p50) if c else "—"))
    step_rows = []
    for f in results.private_floor:
        for name, ms in f.steps_sum_ms.items():
            per_city = [s[name].p50 for s in f.cities.values()]
            step_rows.append((f.query, f"{f.rows_per_city:,}", name, _ms(ms / len(per_city)),
                              _ms(min(per_city)), _ms(max(per_city)), _ms(ms)))
    cores = results.private_floor[0].cores
    return ["## The private path's floor", "",
            " ".join(PRIVATE_FLOOR_METHOD.split("\n\n")[1].split()), "",
            f"Floor = max(slowest city, sum over cities / {cores} cores). The bounded DuckDB "
            "floor counts the bounded query alone; the private floor adds every other step of a "
            "private answer at the node (compile, budget charge, noise and release, serialize; "
            f"all {len(PRIVATE_STEPS)} steps). Central and federated p50 are from the "
            "alternating comparison above, same run.", "",
            *table(("query", "rows/city", "bounded DuckDB, sum over cities ms",
                    "exact plan DuckDB, sum ms", "other private steps, sum ms",
                    "bounded DuckDB floor ms", "private floor ms", "central p50 ms",
                    "floor / central", "federated p50 ms"), rows),
            *table(("query", "rows/city", "step", "mean of city p50s ms", "min city",
                    "max city", "sum over cities ms"), step_rows)]


def _private_summary(results: BenchResults) -> list[str]:
    """One line per question at the largest scale: the private answer against central, and the
    floors under it, all as ratios to central's p50 in the same run."""
    if not results.private_floor:
        return []
    rows = max(f.rows_per_city for f in results.private_floor)
    private = {c.query: c for c in results.rows_sweep if c.rows_per_city == rows}
    exact = {c.query: c for c in results.exact_rows_sweep if c.rows_per_city == rows}
    floors = {f.query: f for f in results.private_floor if f.rows_per_city == rows}
    trials = [t for t in results.layout_trials if t.rows_per_city == rows]
    layout = layout_floors(trials, results.machine["nproc"] or 1) if trials else {}
    lines = []
    for query, c in private.items():
        central = c.central.p50

        def times(ms: float | None, central: float = central) -> str:
            return "—" if ms is None else f"{ms / central:.2f}×"

        error = c.accuracy.vs_central.summary() if c.accuracy else {}
        noise = c.accuracy.vs_bounded.summary() if c.accuracy else {}
        floor = floors.get(query)
        tried = layout.get(query, {})
        lines.append((query, _ms(central), f"{c.ratio:.2f}×",
                      times(floor.floor_ms if floor else None),
                      times(tried.get(LAYOUTS[2], tried.get(LAYOUTS[1]))),
                      f"{exact[query].ratio:.2f}×" if query in exact else "—",
                      _pct(error.get("median_relative_error", float("nan"))),
                      _pct(noise.get("median_relative_error", float("nan")))))
    return [f"## The private path at {rows:,} rows per city, in one table", "",
            "Everything as a multiple of central's p50 in the same run (lower is better; the "
            "target is ≤ 1.50×). Private: the federated private answer end to end. Private "
            "floor: the nodes' own private steps on these cores, nothing else (below). With "
            "rank order + DECIMAL clamp: the bounded DuckDB runs' floor with the two changes "
            "tried below (rank order alone where the node's SQL already clamps in DECIMAL). "
            "Exact: the same question with the row grant, nodes restarted, same run. Errors: "
            "median relative error of the private cells against central (noise and bounding) "
            "and against the bounded exact answer (noise alone).", "",
            *table(("query", "central p50 ms", "private", "private floor",
                    "floor with rank order + DECIMAL clamp", "exact (row grant)",
                    "error vs central", "error from noise alone"), lines)]


def _layout_trials(results: BenchResults) -> list[str]:
    if not results.layout_trials:
        return []
    rows = []
    for query in results.layout_trials[0].bounded:
        for trial in results.layout_trials:
            by_layout, exact = trial.bounded[query], trial.exact[query]
            cells = [_ms(by_layout[name].p50) if name in by_layout else "—" for name in LAYOUTS]
            rows.append((query, trial.city, f"{trial.rows_per_city:,}", *cells,
                         _ms(exact["as stored"].p50), _ms(exact["rank order"].p50),
                         "yes" if trial.same_answer.get(query) else "**NO**"))
    cores = results.machine["nproc"] or 1
    central = {c.query: c.central.p50 for c in results.rows_sweep
               if c.rows_per_city == results.layout_trials[0].rows_per_city}
    floor_rows = []
    for query, floors in layout_floors(results.layout_trials, cores).items():
        want = central.get(query)
        floor_rows.append((query, *(f"{_ms(floors[name])} ({floors[name] / want:.2f}×)"
                                    if name in floors and want else "—"
                                    for name in (*LAYOUTS, "exact plan, as stored")),
                           _ms(want) if want else "—"))
    return ["## What the bounded query could cost: two changes tried, city by city", "",
            " ".join(LAYOUT_METHOD.split()), "",
            *table(("query", "city", "rows", *(f"bounded plan, {name} ms" for name in LAYOUTS),
                    "exact plan, as stored ms", "exact plan, rank order ms",
                    "bounded plans agree"), rows),
            f"The floor each variant puts under the region's answer: max(slowest city, sum "
            f"over the {len(results.layout_trials)} cities / {cores} cores) of the DuckDB runs "
            "alone, and its ratio to central's p50 in the same run. The federated answer adds "
            "to it the coordinator, gRPC over mutual TLS, the other private steps and the "
            "contention between node processes.", "",
            *table(("query", *(f"floor: bounded, {name}" for name in LAYOUTS),
                    "floor: exact plan, as stored", "central p50 ms"), floor_rows)]


def _exact_context(results: BenchResults) -> list[str]:
    if not results.exact_rows_sweep and not results.exact_naive:
        return []
    lines = ["## The same questions exact (row grant), same run", "",
             "After the private runs, the nodes were restarted with the row grant (`--policy "
             "exact`): the same questions answered exactly over every row, against the same "
             "central file, alternating as above. This is the federation's cost without "
             "privacy, for comparison.", ""]
    lines += _comparisons("Exact (row grant) vs central", results.exact_rows_sweep)[2:]
    lines += _naive("Exact (row grant) vs pulling raw rows", results.exact_naive)
    return lines
