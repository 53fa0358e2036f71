"""REPORT.md, results.json and the two charts."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from benchlib.floor import __doc__ as FLOOR_METHOD
from benchlib.measure import Comparison
from benchlib.queries import COMPARED, SMALL, TINY
from benchlib.results import BenchResults
from benchlib.security import __doc__ as SECURITY_METHOD
from benchlib.verdicts import Verdict, verdicts


def write_outputs(results: BenchResults, out: Path) -> list[Verdict]:
    out.mkdir(parents=True, exist_ok=True)
    checked = verdicts(results)
    (out / "results.json").write_text(json.dumps(
        {**results.to_json(), "verdicts": [v.__dict__ for v in checked]}, indent=1,
        ensure_ascii=False, default=str) + "\n")
    chart(results.rows_sweep, "rows_per_city", "rows per city (5 cities)", 1.10,
          out / "latency_vs_rows.png", naive=results.naive, log_x=True)
    chart(results.city_sweep, "cities", "cities", 1.30, out / "latency_vs_cities.png")
    (out / "REPORT.md").write_text(markdown(results, checked), encoding="utf-8")
    return checked


# --- charts -----------------------------------------------------------------------------------

def chart(comparisons: Sequence[Comparison], axis: str, label: str, limit: float, path: Path,
          naive=(), log_x: bool = False) -> None:
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(8, 8), sharex=True,
                                         gridspec_kw={"height_ratios": [3, 2]})
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for colour, query in zip(colours, COMPARED, strict=False):
        points = sorted((c for c in comparisons if c.query == query.name),
                        key=lambda c: getattr(c, axis))
        xs = [getattr(c, axis) for c in points]
        top.plot(xs, [c.federated.p50 for c in points], "o-", color=colour,
                 label=f"{query.name} federated")
        top.plot(xs, [c.central.p50 for c in points], "s--", color=colour,
                 label=f"{query.name} central")
        bottom.plot(xs, [c.ratio for c in points], "o-", color=colour, label=query.name)
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
    if result.results_match:
        return "yes"
    if result.withheld_groups:
        return f"no: {result.withheld_groups} groups withheld under k"
    return "**NO**"


def _ms(value: float) -> str:
    return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"


def markdown(results: BenchResults, checked: list[Verdict]) -> str:
    lines = [f"# cityfed benchmark ({results.mode} run)", ""]
    if results.quick:
        lines += ["> Quick run: sizes and repetitions are far below the targets'; the verdicts "
                  "below are computed at the sizes shown and are indicative only.", ""]
    lines += _machine(results)
    lines += ["## Targets", ""]
    lines += table(("target", "goal", "measured", "verdict", "measured at"),
                   ((v.target, v.goal, v.measured, f"**{v.status}**", v.scale) for v in checked))
    lines += _method(results)
    lines += _comparisons("Federated vs central by rows per city (5 cities)", results.rows_sweep)
    lines += ["![latency vs rows](latency_vs_rows.png)", ""]
    lines += _comparisons("Federated vs central by number of cities", results.city_sweep)
    lines += ["![latency vs cities](latency_vs_cities.png)", ""]
    lines += _latency(results)
    lines += _throughput(results)
    lines += _breakdown(results)
    lines += _security(results)
    lines += _floor(results)
    lines += _naive(results)
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


POLICY_TEXT = {
    "demo": "Each node applies the demo policy (transit_trips: aggregates only, groups of "
            "fewer than k = 10 people withheld), so the nodes count people per group.",
    "no-k": "Each node applies a bench policy granting the same transit_trips columns at row "
            "level: no k threshold, nothing counted or withheld (run with `--policy no-k`).",
}


def _method(results: BenchResults) -> list[str]:
    s = results.settings
    lines = ["## Method", "",
             f"- Nodes: one real `python -m node node serve` process per city on loopback, "
             f"`threads = {s['node_threads']}`, `memory_limit = \"{s['node_memory']}\"` per node "
             f"({s['node_threads_reason']}). Every call goes over mutual TLS with a signed "
             "request token per city. The questions are asked as the region's authority for "
             "the purpose `transit-planning`. " + POLICY_TEXT[s["policy"]],
             "- Central: one DuckDB file with the union of the same cities' `transit_trips` "
             "(ATTACH each city read-only, INSERT; built before the nodes start), opened "
             "read-only by the bench process itself with threads = the nodes' total "
             "(cities × node threads), and run with plain `execute().fetchall()` (no policy, no "
             "k: a group withheld at a node would show as a differing answer).",
             f"- Federated and central runs alternate (the first of the pair swaps every round) "
             f"after {s['warmup']} warm-up run(s) of each; rounds per size: "
             f"{s['rounds']}. Federated time is `Coordinator.ask_sql` end to end (parse, "
             "fan-out, merge, finish) with one Coordinator reused for the series.",
             "- Data: `federation.synthetic.generate_region` (5 member cities); the 6th–8th "
             "cities (tangshan, cangzhou, chengde) are byte copies of beijing, tianjin and "
             "shijiazhuang's stores. Cached by scale under the work directory.",
             "- Questions:", ""]
    lines += [f"  - `{q.name}`: `{q.sql}`" for q in (*COMPARED, SMALL)]
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
            "city's file (one city at a time, so no CPU contention).", "",
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


def _naive(results: BenchResults) -> list[str]:
    rows = [(n.query, n.cities, f"{n.rows_per_city:,}", ", ".join(n.columns),
             _ms(n.federated.p50), _ms(n.naive.p50), _ms(n.fetch.p50), _ms(n.transfer.p50),
             _ms(n.aggregate.p50), f"{n.raw_bytes / 1e6:,.1f} MB", f"{n.answer_bytes:,} B",
             f"{n.gain:.1f}×", same_answer(n))
            for n in sorted(results.naive, key=lambda n: n.rows_per_city)]
    return ["## Pushdown vs pulling raw rows", "",
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
