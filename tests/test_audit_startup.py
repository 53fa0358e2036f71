"""A node process starts as fast with a long audit log as with none (issue 11, problem 3): it
verifies only what follows the last signed checkpoint. scripts/audit_startup.py measures the
same with 1,000,000 records."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from federation.coordination.coordinator import CityStatus, Coordinator
from federation.synthetic.local_region import (
    TrustedRegion,
    init_trusted_region,
    node_address,
    spawn_node_process,
)
from federation.trust.keys import read_private_key
from node.audit import segments
from tests import regionkit
from tests.regionkit import AUDITOR

CITY = "tianjin"
RECORDS = 100_000  # verifying them all takes about a second of CPU
SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def process_region(directory: Path, **options) -> TrustedRegion:
    """One city's store, policy and `<city>.toml`, for a node process."""
    regionkit.build_city_store(directory / f"{CITY}.duckdb", 1, 200)
    trusted = init_trusted_region(directory, region="test", cities=(CITY,),
                                  authorities=(AUDITOR,))
    policy = directory / f"{CITY}.policy.toml"
    policy.write_text(regionkit.open_policy())
    config = regionkit.node_config(trusted, CITY, directory / f"{CITY}.duckdb", policy,
                                   memory_limit="256MB", **options)
    (directory / f"{CITY}.toml").write_text(regionkit.config_toml(config))
    return trusted


def cpu_until_listening(config: Path):
    """The node process, and its CPU seconds from its start until it said it listens."""
    process = spawn_node_process(config)
    node_address(process, config)
    fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return process, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop(process) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(30)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_a_node_with_a_long_audit_log_starts_as_fast_as_one_without(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPTS))
    from benchlib.auditlog import write_log

    trusted = process_region(tmp_path, audit_segment_bytes=16 * 1024 * 1024)
    config = tmp_path / f"{CITY}.toml"
    audit = tmp_path / f"{CITY}.state" / "audit"
    process, empty = cpu_until_listening(config)
    stop(process)
    for path in audit.iterdir():
        path.unlink()
    key = read_private_key(trusted.directory.member(CITY) / "signing.key")
    write_log(audit, key=key, city=CITY, records=RECORDS, segment_bytes=16 * 1024 * 1024)
    assert len(segments(audit)) >= 4

    started = time.perf_counter()
    process, cpu = cpu_until_listening(config)
    wall = time.perf_counter() - started
    try:
        manifest, identity = trusted.directory.open_as(AUDITOR)
        with Coordinator(manifest, identity) as coordinator:
            answer = coordinator.ask_sql("SELECT sex, count(*) FROM population GROUP BY sex",
                                         purpose=regionkit.PURPOSE, cities=(CITY,))
        (outcome,) = answer.outcomes
        assert outcome.status is CityStatus.ANSWERED
        assert outcome.receipt.audit_index == RECORDS  # the log went on where it stood
    finally:
        stop(process)
    print(f"\nnode start-up CPU: {empty:.2f} s without a log, {cpu:.2f} s with "
          f"{RECORDS:,} records ({wall:.2f} s wall)")
    assert cpu < empty + 0.3, (cpu, empty)
    holding = max((first, path) for first, path in segments(audit) if first <= RECORDS)[1]
    found = [json.loads(line) for line in holding.read_text().splitlines()]
    assert [r["jti"] for r in found if r["index"] == RECORDS] == [outcome.receipt.jti]
