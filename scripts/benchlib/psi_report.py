"""REPORT.md and results.json of the private set intersection's benchmark (`--only psi`)."""

from __future__ import annotations

import json
from pathlib import Path

from benchlib.psi import (
    ASKER,
    CITIES,
    OWNER,
    PARTNER,
    PRIVATE_ASKER,
    PURPOSE,
    WARM_UP_POINTS,
    PsiResults,
    PsiRun,
    PsiSize,
)
from benchlib.psi import __doc__ as PSI_METHOD
from benchlib.psi_baseline import GCS_FPR
from benchlib.report import table
from benchlib.verdicts import NOT_MEASURED, Verdict

MB = 1024 * 1024
WALL_TARGET = (1_000_000, 60.0)  # identifiers per side, seconds
LIBRARY_TARGET = (1_000_000, 0.3)  # identifiers per side, our time over the library's
MEMORY_TARGET = (10_000_000, 2048.0)  # identifiers per side, MB per party


def write_psi_outputs(results: PsiResults, out: Path) -> list[Verdict]:
    out.mkdir(parents=True, exist_ok=True)
    checked = psi_verdicts(results)
    (out / "results.json").write_text(json.dumps(
        {**results.to_json(), "verdicts": [v.__dict__ for v in checked]}, indent=1,
        ensure_ascii=False, default=str) + "\n")
    (out / "REPORT.md").write_text(markdown(results, checked), encoding="utf-8")
    return checked


# --- verdicts ---------------------------------------------------------------------------------

def _at(results: PsiResults, n: int) -> PsiSize | None:
    """The target's size, or in a quick run the largest measured."""
    found = results.size(n)
    if found is None and results.quick and results.sizes:
        found = max(results.sizes, key=lambda s: s.n)
    return found


def _scale(size: PsiSize) -> str:
    return f"{size.n:,} × {size.n:,} identifiers"


def psi_verdicts(results: PsiResults) -> list[Verdict]:
    return [_wall(results), _library(results), _memory(results)]


def _wall(results: PsiResults) -> Verdict:
    n, limit = WALL_TARGET
    target = f"PSI {n:,} × {n:,}, real protocol, wall time"
    goal = f"≤ {limit:.0f} s"
    size = _at(results, n)
    if size is None or not size.runs:
        return Verdict(target, goal, "—", NOT_MEASURED, f"{n:,} × {n:,}")
    floor = size.floor_seconds
    measured = (f"median {size.median_seconds:.1f} s of {len(size.runs)}; floor "
                f"{floor:.1f} s ({size.floor['x25519_ops']:,} X25519 products at "
                f"{size.floor['x25519_us_alone']} µs over {size.floor['workers']} cores), "
                f"{size.median_seconds / floor:.2f}× the floor")
    if size.median_seconds > limit and floor > limit:
        measured += f": the floor alone is above {limit:.0f} s, out of reach on this machine"
    return Verdict(target, goal, measured, _status(size.median_seconds <= limit), _scale(size))


def _library(results: PsiResults) -> Verdict:
    n, limit = LIBRARY_TARGET
    target = f"PSI {n:,} × {n:,} vs openmined-psi, same run"
    goal = f"≤ {limit:.2f}× the library's time"
    size = _at(results, n)
    if size is None or not size.runs or size.library_seconds is None:
        return Verdict(target, goal, "—", NOT_MEASURED, f"{n:,} × {n:,}")
    ratio = size.median_seconds / size.library_seconds
    measured = (f"{ratio:.2f}× (ours {size.median_seconds:.1f} s, two nodes over TLS; "
                f"openmined-psi {size.library_seconds:.1f} s, {_fastest(size)}, in one process)")
    return Verdict(target, goal, measured, _status(ratio <= limit), _scale(size))


def _memory(results: PsiResults) -> Verdict:
    n, limit = MEMORY_TARGET
    target = f"PSI {n:,} × {n:,} completes, memory per party"
    goal = f"completes, ≤ {limit / 1024:.0f} GB per party (node and its blinding workers)"
    size = _at(results, n)
    if size is None or not size.runs:
        return Verdict(target, goal, "—", NOT_MEASURED, f"{n:,} × {n:,}")
    worst = max(size.peak_mb(c) for c in CITIES)
    measured = (f"completed in {size.median_seconds:.0f} s, count exact; peak "
                + ", ".join(f"{c} {size.peak_mb(c):,.0f} MB" for c in CITIES)
                + f" (sum of each process's peak), asker {size.peak_mb('asker'):,.0f} MB")
    ok = all(r.correct for r in size.runs) and worst <= limit
    return Verdict(target, goal, measured, _status(ok), _scale(size))


def _status(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _fastest(size: PsiSize) -> str:
    lib = size.library or {}
    raw, gcs = lib["raw"]["seconds"], lib["gcs"]["seconds"]
    return "RAW setup, exact" if raw <= gcs else f"GCS setup, false-positive rate {GCS_FPR:g}"


# --- markdown ---------------------------------------------------------------------------------

def _s(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds:,.2f}" if seconds < 100 else f"{seconds:,.0f}"


def _mb(value: float) -> str:
    return f"{value:,.0f}"


def _bytes(value: int) -> str:
    return f"{value / MB:,.1f} MiB"


def markdown(results: PsiResults, checked: list[Verdict]) -> str:
    lines = [f"# cityfed benchmark: private set intersection ({results.mode} run)", ""]
    if results.quick:
        lines += ["> Quick run: sizes far below the targets'; the verdicts below are computed "
                  "at the largest size measured and are indicative only.", ""]
    elif [s.n for s in results.sizes] != list(results.settings.get("full_sizes", [])):
        lines += ["> Partial run: only " + ", ".join(f"{s.n:,}" for s in results.sizes)
                  + " identifiers per side.", ""]
    lines += _machine(results)
    lines += ["## Targets", ""]
    lines += table(("target", "goal", "measured", "verdict", "measured at"),
                   ((v.target, v.goal, v.measured, f"**{v.status}**", v.scale) for v in checked))
    lines += _summary(results)
    lines += _floor_section(results)
    lines += _where_time_goes(results)
    lines += _memory_section(results)
    lines += _private(results)
    lines += _library_section(results)
    lines += _method(results)
    lines += _noise(results)
    return "\n".join(lines) + "\n"


def _machine(results: PsiResults) -> list[str]:
    m = results.machine
    note = [f"Note: {results.note}", ""] if results.note else []
    return [f"Run {results.started} UTC, {results.seconds / 60:.1f} minutes in all, code at "
            f"{m.get('code', '?')}.", "", *note,
            *table(("nproc", "CPU", "memory", "python", "duckdb", "grpcio",
                    "load avg at start → end"),
                   [(m.get("nproc"), m.get("cpu"), m.get("memory"), m.get("python"),
                     m.get("duckdb"), m.get("grpcio"),
                     f"{m.get('load_average_at_start')} → {m.get('load_average_at_end', '?')}")])]


def _summary(results: PsiResults) -> list[str]:
    rows = []
    for size in results.sizes:
        times = [r.seconds for r in size.runs]
        lib = size.library_seconds
        run = size.runs[0]
        rows.append((
            f"{size.n:,}", f"{size.overlap:,}", len(size.runs),
            f"**{_s(size.median_seconds)}**" + (f" ({_s(min(times))}–{_s(max(times))})"
                                                if len(times) > 1 else ""),
            _s(size.floor_seconds), f"{size.median_seconds / size.floor_seconds:.2f}×",
            _s(size.floor_busy_seconds),
            _bytes(run.bytes_moved),
            " / ".join(_mb(size.peak_mb(p)) for p in (*CITIES, "asker")),
            _s(size.arithmetic["seconds"]) if size.arithmetic else "—",
            _s(lib), f"{size.median_seconds / lib:.2f}×" if lib else "—"))
    return ["## The real protocol, by size", "",
            f"Wall time of `run_linkage` in `count` mode, exact (the bench member is granted "
            f"`row`), from the asker's first call to its verified answer: {OWNER} (owner) and "
            f"{PARTNER} (partner) each a node process with its blinding workers, over mutual "
            "TLS, the asker in the bench process. Every count equalled the planted overlap. "
            "Floor: the least time the protocol's 2(n+m) X25519 products take on this "
            "machine's cores, at the bare cost of one product measured in this run, alone in "
            "its process (right before and after the runs; the lower is used), and with every "
            "core multiplying at once. Bytes: the serialized messages the asker relayed "
            "(each crossed two TLS links, node to asker and asker to node). Peak memory: each "
            "party's process tree, the sum of each process's peak resident set (below). "
            "Arithmetic alone: `psi_baseline.cityfed_psi`, the same four blinding steps and "
            "the owner's comparison in this process, no gRPC. openmined-psi: the faster of its "
            "two setups, one thread, in one process.", "",
            *table(("identifiers per side", "shared", "runs", "wall time s, median (range)",
                    "floor s", "ratio to floor", "floor s, all cores busy",
                    "bytes relayed", f"peak MB {OWNER} / {PARTNER} / asker",
                    "arithmetic alone s", "openmined-psi s", "ours / library"), rows)]


def _floor_section(results: PsiResults) -> list[str]:
    rows = [(f"{s.n:,}", f["when"], f"{f['x25519_ops']:,}", f["x25519_us_alone"],
             f["x25519_us_all_cores_busy"], _s(f["floor_seconds"]),
             _s(f["floor_seconds_all_cores_busy"]))
            for s in results.sizes for f in s.floors]
    lines = ["## The floor", "",
             "Each element costs two X25519 products (its own city blinds it, the other city "
             "blinds it again), so a linkage of n by m elements costs 2(n+m) products, spread "
             "over the cores. `psi_baseline.floor_seconds` times a bare product (the library "
             "call, peer keys loaded beforehand) in one process, and in one process per core "
             "at once (cores that share a physical core or a quota are slower then).", "",
             *table(("identifiers per side", "measured", "products", "µs a product alone",
                     "µs with every core busy", "floor s", "floor s, all cores busy"), rows)]
    n, limit = WALL_TARGET
    size = results.size(n)
    if size is not None and size.runs:
        floor = size.floor
        verdict = ("meets it" if size.median_seconds <= limit else
                   "misses it" + (", and cannot meet it on this machine: the floor is above "
                                  f"{limit:.0f} s" if floor["floor_seconds"] > limit else ""))
        lines += [f"At {n:,} × {n:,}: {floor['x25519_ops']:,} products × "
                  f"{floor['x25519_us_alone']} µs / {floor['workers']} cores = "
                  f"{floor['floor_seconds']:.1f} s at the very least "
                  f"({size.floor_busy_seconds:.1f} s at the cost of a product "
                  f"with every core busy). The {limit:.0f} s target {verdict}. The protocol "
                  f"took {size.median_seconds:.1f} s, "
                  f"{size.median_seconds / floor['floor_seconds']:.2f}× the floor; the next "
                  "section says where the rest went.", ""]
    return lines


def _cpu_row(size: PsiSize, run: PsiRun, label: str) -> tuple:
    cores = size.floor["workers"]
    owner, partner, asker = (run.parties[c] for c in (*CITIES, "asker"))
    total = sum(run.cpu(p) for p in (*CITIES, "asker"))
    floor_cpu = size.floor["cpu_seconds"]
    phases = run.phases()
    return (f"{size.n:,}", label, _s(run.seconds),
            _s(owner.cpu_seconds["main"]), _s(owner.cpu_seconds["descendants"]),
            _s(partner.cpu_seconds["main"]), _s(partner.cpu_seconds["descendants"]),
            f"{_workers_us(size, run):.1f}",
            _s(asker.cpu_seconds["main"]), _s(total), _s(floor_cpu),
            f"{total / floor_cpu:.2f}×", _s(total / cores), f"{run.seconds / (total / cores):.2f}×",
            " / ".join(_s(phases.get(k)) for k in ("before blinding", "blinding",
                                                   "after blinding")))


def _workers_us(size: PsiSize, run: PsiRun) -> float:
    """The blinding workers' CPU per X25519 product, both cities together."""
    workers = sum(run.parties[c].cpu_seconds["descendants"] for c in CITIES)
    return workers / size.floor["x25519_ops"] * 1e6


def _where_time_goes(results: PsiResults) -> list[str]:
    rows, findings = [], []
    for size in results.sizes:
        for index, run in enumerate(size.runs):
            rows.append(_cpu_row(size, run, f"exact #{index + 1}"))
        for run in size.private_runs:
            rows.append(_cpu_row(size, run, "private"))
        run = min(size.runs, key=lambda r: r.seconds)
        total = sum(run.cpu(p) for p in (*CITIES, "asker"))
        rest = sum(run.parties[c].cpu_seconds["main"] for c in CITIES) + run.cpu("asker")
        cores = size.floor["workers"]
        findings.append(
            f"- {size.n:,} × {size.n:,} (its fastest run, {_s(run.seconds)} s): the blinding "
            f"workers spent {_workers_us(size, run):.1f} µs of CPU a product against "
            f"{size.floor['x25519_us_alone']} µs for the bare product; the nodes' serving "
            f"processes and the asker {_s(rest)} s of CPU together ({rest / total:.1%} of "
            f"all). Wall time was {run.seconds / (total / cores):.2f}× the run's CPU over "
            f"{cores} cores.")
    return ["## Where the time goes", "",
            "CPU each process used during the run, from /proc: each node's serving process "
            "(gRPC, TLS, signatures, reading its keys from DuckDB, the owner's tags and "
            "comparison) and its blinding workers (the X25519 products, hashing, the workers' "
            "share of moving chunks), and the asker (the bench process: its relay threads, TLS "
            "and protobuf; the sampling thread's own CPU is taken out). Floor CPU: the products "
            "alone at their bare cost. Every party shares the same cores, so a run cannot end "
            "before its total CPU over the cores; the last column but one says how far the "
            "wall time was above that (the rest: other processes on this shared machine, see "
            "the load table, and moments when the pipeline kept a core idle). Phases, from "
            "the CPU timeline sampled during the run: until both nodes' workers start "
            "blinding (the nodes read and shuffle their keys), while any worker blinds, and "
            "after the last one stops (the owner's final comparison and answer).", "",
            *table(("identifiers per side", "run", "wall s", f"{OWNER} serving CPU s",
                    f"{OWNER} workers CPU s", f"{PARTNER} serving CPU s",
                    f"{PARTNER} workers CPU s", "workers µs a product", "asker CPU s",
                    "total CPU s", "floor CPU s", "total / floor", "total / cores s",
                    "wall / (total / cores)", "phases s: before / blinding / after"), rows),
            *findings, "",
            "A worker's product costs more than the bare one: it loads each point into the "
            "library (`X25519PublicKey.from_public_bytes`), hashes the identifiers of its "
            "city's own set, and shares its core with the other city's workers (the floor "
            "with every core busy above).", ""]


def _memory_section(results: PsiResults) -> list[str]:
    rows = []
    for size in results.sizes:
        for run in size.runs[:1] + size.private_runs:
            rows.append((f"{size.n:,}", run.mode, *(
                f"{_mb(run.parties[c].peak_hwm_sum_mb)} ({_mb(run.parties[c].peak_pss_mb)}, "
                f"{run.parties[c].processes} processes)" for c in CITIES),
                f"{_mb(run.parties['asker'].peak_hwm_sum_mb)} (from "
                f"{_mb(run.asker_rss_before_mb)})"))
    return ["## Memory per party", "",
            "Each node is a process tree: the serving process, the fork server it starts for "
            "its blinding workers, and the workers. First figure: the sum over the tree of each "
            "process's peak resident set (VmHWM, reset through /proc/PID/clear_refs right "
            "before the run): an upper bound, since the processes need not peak at once and "
            "pages the workers share with the fork server count in each. In brackets: the "
            "highest sum of the tree's proportional set size (PSS, shared pages split among "
            "their sharers) sampled during the run. The asker is the bench process alone: its "
            "peak during the run, and its resident set when the run started (what earlier "
            "sections left).", "",
            *table(("identifiers per side", "run", f"{OWNER} (owner) MB", f"{PARTNER} "
                    "(partner) MB", "asker MB"), rows)]


def _private(results: PsiResults) -> list[str]:
    rows = []
    for size in results.sizes:
        for run in size.private_runs:
            rows.append((f"{size.n:,}", _s(run.seconds), _s(size.median_seconds),
                         f"{run.seconds / size.median_seconds:.3f}×",
                         f"{run.count:,} ± {run.count_half_width_95:.1f} (true {size.overlap:,})",
                         f"{run.owner_points:,} / {run.partner_points:,}",
                         _bytes(run.bytes_moved)))
    if not rows:
        return []
    return ["## The private linkage (match grant)", "",
            f"The same linkage asked by `{PRIVATE_ASKER}`, whom both cities grant only `match`: "
            "each city charges its privacy budget, pads its set with dummies (the truncated "
            "shifted Laplace mechanism, ε/2 and δ of its policy), and the owner noises the "
            "count (discrete Laplace, ε/2). The ± is the 95% half-width the answer states.", "",
            *table(("identifiers per side", "private wall s", "exact wall s (median)",
                    "private / exact", "count ± half-width", "points sent, owner / partner",
                    "bytes relayed"), rows)]


def _library_section(results: PsiResults) -> list[str]:
    rows = []
    for size in results.sizes:
        lib = size.library
        if not lib:
            continue
        raw, gcs = lib["raw"], lib["gcs"]
        rows.append((f"{size.n:,}", lib["library"], _s(raw["seconds"]), _s(gcs["seconds"]),
                     "; ".join(f"{k} {_s(v)}" for k, v in raw["steps"].items()),
                     _bytes(raw["bytes_moved"]), _bytes(gcs["bytes_moved"]),
                     _mb(lib["peak_mb"]), "yes" if raw["correct"] and gcs["correct"] else "NO",
                     _s(size.median_seconds), f"{size.median_seconds / size.library_seconds:.2f}×"))
    if not rows:
        return []
    return ["## OpenMined's PSI, same run", "",
            "`openmined-psi` from PyPI (ECDH over P-256, one thread), in a child process of "
            "the bench, the client learning the intersection, over the same kind of "
            "identifiers and overlap. RAW: the server's blinded set sent whole (exact, as "
            f"ours). GCS: its default, a compressed filter with false-positive rate "
            f"{GCS_FPR:g} (its setup and intersection timed apart; the request and response "
            "are the same). Nothing goes over a network, so it pays no gRPC, TLS, signature, "
            "policy or audit cost; ours pays all of them, and uses every core.", "",
            *table(("identifiers per side", "library", "RAW s", "GCS s", "RAW steps s",
                    "RAW bytes", "GCS bytes", "peak MB", "correct", "ours s",
                    "ours / fastest library"), rows)]


def _method(results: PsiResults) -> list[str]:
    settings = results.settings
    runs = "; ".join(f"up to {limit:,} identifiers a side: {r}" if limit < 10**12 else
                     f"{'larger' if len(settings['runs']) > 1 else 'every size'}: {r}"
                     for limit, r in settings["runs"])
    return ["## Method", "",
            " ".join(PSI_METHOD.split()), "",
            f"- Nodes: `python -m cli node serve` per city on loopback, `linkage_workers = 0` "
            f"(one blinding process per core: {settings['cores']}), DuckDB `threads = 2`, "
            f"`memory_limit = \"2GB\"`, `linkage_session_seconds = "
            f"{settings['session_seconds']}`. The asker is a `Coordinator` for `{ASKER}` in the "
            f"bench process, purpose `{PURPOSE}`; every step's receipt is verified.",
            "- The plan: `population.person_id` on both sides, no filter, mode `count`. Before "
            f"the timed runs of each size, an untimed warm-up linkage of about "
            f"{WARM_UP_POINTS:,} identifiers a side (a filter on `birth_date`) starts both "
            "nodes' blinding workers and the channels. The nodes rank each store's rows when "
            "the data is generated, so no start of a node does it.",
            f"- Timed runs per size: {runs}; the private linkage once at "
            + ", ".join(f"{n:,}" for n in settings["private_at"]) + ".",
            "- Memory and CPU: read from /proc (no psutil): every process of each node's tree "
            "(the serving process, the fork server, the workers), sampled through the run "
            "for the timeline and the PSS peak.",
            "- The policy each city applies:", "", "```toml", settings["policy_text"].rstrip(),
            "```", "",
            *table(("data set", "identifiers per side", "shared", "prepared in s", "cached"),
                   [(s.data["key"], f"{s.n:,}", f"{s.overlap:,}", s.data["prepare_seconds"],
                     "yes" if s.data["reused"] else "no") for s in results.sizes])]


def _noise(results: PsiResults) -> list[str]:
    rows = [(n.section, f"{n.seconds:.0f}", f"{n.bench_cores:.2f}", f"{n.other_cores:.2f}",
             f"{n.steal_cores:.2f}") for n in results.noise]
    return ["## Machine load during each section", "",
            f"CPU in use, in cores (this machine has {results.machine.get('nproc')}), from "
            "/proc/stat and the processes' clocks: by the benchmark (the bench process and both "
            "nodes' process trees; for the library, its child process), by every other "
            "process on the machine, and stolen by the hypervisor. This machine is shared: "
            "where others used a large share, the wall times above are longer than the same "
            "work would take alone.", "",
            *table(("section", "seconds", "bench cores", "other processes' cores",
                    "steal cores"), rows)]
