"""How long a node takes to start listening with a large audit log (issue 11, problem 3).

    .venv/bin/python scripts/audit_startup.py                    # 1,000,000 records (~1 minute)
    .venv/bin/python scripts/audit_startup.py --records 100000 --runs 1

Writes a one-city region, gives the city an audit log of --records records (written directly, as
the node would have written them: benchlib/auditlog.py), starts `cityfed node serve` and
measures the wall time and the process's CPU time until it prints that it listens. Then the same
with the log's head.json removed, which makes the node verify the whole log on opening as every
version before segmented logs did, and with no log at all. Runs alternate; medians are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchlib.auditlog import write_log

from federation.synthetic import RegionScale
from federation.synthetic.local_region import node_address, spawn_node_process, write_region
from federation.trust.keys import read_private_key
from node.audit import HEAD_FILE, segments

CITY = "tianjin"


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_once(config: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) from spawning the node until it says it listens."""
    started = time.perf_counter()
    process = spawn_node_process(config)
    try:
        node_address(process, config)
        wall = time.perf_counter() - started
        cpu = _cpu_seconds(process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except Exception:
            process.kill()
            process.wait()
    return wall, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workdir", type=Path, help="default: a temporary folder, removed")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="audit-startup-"))
    try:
        write_region(workdir, scale=RegionScale(people_per_city=200, trips_per_city=500,
                                                visits_per_city=200), cities=(CITY,))
        config = workdir / f"{CITY}.toml"
        audit = workdir / f"{CITY}.state" / "audit"
        key = read_private_key(workdir / "members" / CITY / "signing.key")
        start_once(config)  # the node's first start: takes the manifest, creates its state
        shutil.rmtree(audit)
        began = time.perf_counter()
        head = write_log(audit, key=key, city=CITY, records=args.records)
        written = time.perf_counter() - began
        log_bytes = sum(path.stat().st_size for _, path in segments(audit))
        kept = audit.with_name("audit.kept")
        shutil.copytree(audit, kept)

        timings: dict[str, list[tuple[float, float]]] = {
            "segmented log (head.json)": [], "whole log verified (no head.json)": [],
            "no audit log": []}
        for _ in range(args.runs):
            for name in timings:
                shutil.rmtree(audit)
                if name != "no audit log":
                    shutil.copytree(kept, audit)
                    if name.startswith("whole"):
                        (audit / HEAD_FILE).unlink()
                timings[name].append(start_once(config))
        result = {
            "records": args.records, "log_bytes": log_bytes, "segments": len(segments(kept)),
            "write_seconds": round(written, 2), "last_checkpoint": head.size,
            **{name: {"wall_seconds": round(statistics.median(w for w, _ in runs), 3),
                      "cpu_seconds": round(statistics.median(c for _, c in runs), 3),
                      "runs": len(runs)} for name, runs in timings.items()},
        }
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"audit log: {args.records:,} records, {log_bytes / 1e6:.0f} MB in "
          f"{result['segments']} segments (written in {written:.1f} s)")
    print(f"{'start-up':36} {'wall s':>8} {'CPU s':>8}   (median of {args.runs})")
    for name in timings:
        print(f"{name:36} {result[name]['wall_seconds']:8.2f} {result[name]['cpu_seconds']:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
