"""A full disk, for real: a node whose disk fills refuses with UNAVAILABLE and a documented reason,
never INTERNAL, and answers again once there is room; a node started on a full disk says in one
line what is full and where.

The disk is a small tmpfs mounted for the test, filled with a file until the kernel says ENOSPC:
what a city's disk does. Mounting needs root with CAP_SYS_ADMIN (here, and CI, which runs as root
on the same kind of machine); where it is not permitted (a container without that capability)
the disk is an ordinary folder and "full" is RLIMIT_FSIZE of 0 set on the node's process with
prlimit: every write to a regular file then fails with EFBIG (Python ignores SIGXFSZ), the audit
log's too, so there every refusal may carry AUDIT_UNAVAILABLE. CITYFED_TEST_DISK=rlimit chooses
the limit where mounting is permitted."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from cityfed.v1 import admin_pb2, admin_pb2_grpc

from federation.query.sql import parse_query
from federation.serving.grpc_errors import error_reason
from federation.synthetic.local_region import init_trusted_region, node_address, spawn_node_process
from node.audit import read_records
from tests import regionkit

CITY = "tianjin"
SQL = "SELECT sex, count(*) FROM population GROUP BY sex"
# What a refusal for a full disk may say (docs/errors.md).
DISK_REASONS = {"STATE_UNAVAILABLE", "STORE_UNAVAILABLE", "AUDIT_UNAVAILABLE"}


class SmallDisk:
    """A folder on a disk that can be filled and freed again."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.mkdir()
        self.tmpfs = os.environ.get("CITYFED_TEST_DISK") != "rlimit" and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=32m,mode=0700", "tmpfs", str(path)],
            capture_output=True).returncode == 0

    def fill(self, pid: int | None = None) -> None:
        """Fill the disk (tmpfs), or forbid the process `pid` any write (file-size limit)."""
        if self.tmpfs:
            with open(self.path / "filler", "wb") as filler:
                try:
                    while True:
                        filler.write(b"\0" * (1 << 16))
                except OSError:
                    pass
        elif pid is not None:
            hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)[1]
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (0, hard))

    def free(self, pid: int | None = None) -> None:
        if self.tmpfs:
            (self.path / "filler").unlink()
        elif pid is not None:
            hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)[1]
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (hard, hard))

    def command(self, argv: list[str]) -> list[str]:
        """`argv` started as a process that may not write (file-size limit) when the disk is
        not a tmpfs; as it is otherwise."""
        if self.tmpfs:
            return argv
        return [sys.executable, "-c", "import os, resource, sys; "
                "resource.setrlimit(resource.RLIMIT_FSIZE, "
                "(0, resource.getrlimit(resource.RLIMIT_FSIZE)[1])); "
                "os.execv(sys.argv[1], sys.argv[1:])", *argv]

    def unmount(self) -> None:
        if self.tmpfs:
            subprocess.run(["umount", "-l", str(self.path)], check=True)


@pytest.fixture
def disk(tmp_path):
    small = SmallDisk(tmp_path / "disk")
    yield small
    small.unmount()


@pytest.fixture
def node_files(tmp_path, disk):
    """A city's database and state on the small disk, its audit log on the roomy one (so that a
    refusal for the full disk can be recorded), its config and log beside the test."""
    regionkit.build_city_store(disk.path / f"{CITY}.duckdb", 1, 200)
    (disk.path / f"{CITY}.duckdb").chmod(0o600)  # as the node leaves it: no warning at start
    trusted = init_trusted_region(tmp_path / "region", region="test", cities=(CITY,),
                                  authorities=(regionkit.AUDITOR,))
    policy = tmp_path / "policy.toml"
    policy.write_text(regionkit.open_policy())
    state = disk.path / f"{CITY}.state"
    state.mkdir(mode=0o700)
    (tmp_path / "audit").mkdir(mode=0o700)
    (state / "audit").symlink_to(tmp_path / "audit")
    config = regionkit.node_config(trusted, CITY, disk.path / f"{CITY}.duckdb", policy,
                                   state_dir=state, admin_socket=tmp_path / "admin.sock")
    path = tmp_path / f"{CITY}.toml"
    path.write_text(regionkit.config_toml(config))
    return trusted, config, path


def _refusal(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as refused:
        call()
    return refused.value.code(), error_reason(refused.value)


def test_a_node_whose_disk_fills_refuses_with_unavailable_and_a_reason_then_recovers(
        disk, node_files, tmp_path):
    trusted, config, config_path = node_files
    rows = tmp_path / "enrolments.csv"
    rows.write_text("person_id,scheme,status,enrolled_on,monthly_amount,last_paid_on\n" + "".join(
        f"11010119900101{i:04d},pension,active,2010-05-01,4321.50,2026-10-01\n"
        for i in range(5000)))
    process = spawn_node_process(config_path)
    try:
        node_address(process, config_path)
        region = regionkit.RunningRegion(trusted.directory.path, trusted, {}, None, None)
        plan = parse_query(SQL).plan.SerializeToString()
        node_stub = regionkit.node_stub(region, CITY)
        assert len(regionkit.aggregate(region, CITY, plan, stub=node_stub).groups) == 2

        disk.fill(process.pid)
        ask_status, ask_reason = _refusal(
            lambda: regionkit.aggregate(region, CITY, plan, stub=node_stub, timeout=10))
        with grpc.insecure_channel(f"unix:{config.admin_socket_path}") as channel:
            load_status, load_reason = _refusal(
                lambda: admin_pb2_grpc.AdminServiceStub(channel).Ingest(
                    admin_pb2.IngestRequest(dataset="social_insurance", path=str(rows),
                                            mode=admin_pb2.INGEST_MODE_APPEND), timeout=30))
        assert (ask_status, load_status) == (grpc.StatusCode.UNAVAILABLE,) * 2
        assert {ask_reason, load_reason} <= DISK_REASONS
        if disk.tmpfs:  # the audit log is on another disk: the refusals are recorded
            assert (ask_reason, load_reason) == ("STATE_UNAVAILABLE", "STORE_UNAVAILABLE")
            recorded = list(read_records(tmp_path / "audit"))[-2:]
            assert [(r["status"], r["reason"].split(":")[0]) for r in recorded] == [
                ("UNAVAILABLE", "STATE_UNAVAILABLE"), ("UNAVAILABLE", "STORE_UNAVAILABLE")]

        disk.free(process.pid)
        assert len(regionkit.aggregate(region, CITY, plan, stub=node_stub).groups) == 2
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    log = config_path.with_suffix(".log").read_text()
    assert "Traceback" not in log and "INTERNAL" not in log, log[-3000:]


def test_a_node_started_on_a_full_disk_says_in_one_line_what_is_full_and_where(
        disk, node_files):
    _, config, config_path = node_files
    disk.fill()
    started = subprocess.run(
        disk.command([sys.executable, "-m", "cli", "node", "serve", "--config",
                      str(config_path)]),
        capture_output=True, text=True, timeout=60)
    assert started.returncode != 0
    assert "Traceback" not in started.stderr
    lines = started.stderr.strip().splitlines()
    assert len(lines) == 1, started.stderr
    (line,) = lines
    assert line.startswith(f"error: UNAVAILABLE: {CITY} cannot start: ")
    if disk.tmpfs:
        assert "No space left on device" in line
        assert f"the disk holding {config.state_path} has 0 bytes free" in line
    else:
        assert "File too large" in line and "file-size limit" in line


_STORES = """
import json, sys
from pathlib import Path
from federation.errors import CityfedError
from node.budget import BudgetLimits, PrivacyBudget
from node.ingest import IngestMode
from node.replay import ReplayCache
from node.stores.duckdb import DuckDBStore

disk, rows = Path(sys.argv[1]), Path(sys.argv[2])
tokens = ReplayCache(disk / "seen_tokens.sqlite")
budget = PrivacyBudget(disk / "budget.sqlite")
store = DuckDBStore(disk / "city.duckdb")
limits = BudgetLimits(epsilon=10.0, delta=1e-6, period="day")
tokens.remember("a" * 32, 2**40)
budget.charge("auditor", "statistics", 1.0, 0.0, limits)
print("ready", flush=True)
sys.stdin.readline()

def outcome(call):
    try:
        call()
        return "done"
    except CityfedError as error:
        return f"{error.status.name} {error.reason}"
    except Exception as error:
        return f"crashed {type(error).__name__}"

print(json.dumps({
    "token": outcome(lambda: tokens.remember("b" * 32, 2**40)),
    "budget": outcome(lambda: budget.charge("auditor", "statistics", 1.0, 0.0, limits)),
    "load": outcome(lambda: store.ingest("social_insurance", rows, IngestMode.APPEND)),
}), flush=True)
sys.stdin.readline()
print(json.dumps({
    "spent": budget.state("auditor", "statistics", limits).epsilon_spent,
    "rows": store.row_counts()["social_insurance"],
    "token": outcome(lambda: tokens.remember("b" * 32, 2**40)),
}), flush=True)
"""


def test_each_store_that_cannot_write_refuses_with_unavailable_and_changes_nothing(disk,
                                                                                   tmp_path):
    """The memory of token ids, the privacy budget and the database, each on a full disk."""
    rows = tmp_path / "enrolments.csv"
    rows.write_text("person_id,scheme,status,enrolled_on,monthly_amount,last_paid_on\n" + "".join(
        f"11010119900101{i:04d},pension,active,2010-05-01,4321.50,2026-10-01\n"
        for i in range(5000)))
    child = subprocess.Popen([sys.executable, "-c", _STORES, str(disk.path), str(rows)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             cwd=Path(__file__).parent.parent)
    try:
        assert child.stdout.readline().strip() == "ready"
        disk.fill(child.pid)
        child.stdin.write("go\n")
        child.stdin.flush()
        full = json.loads(child.stdout.readline())
        disk.free(child.pid)
        child.stdin.write("go\n")
        child.stdin.flush()
        after = json.loads(child.stdout.readline())
    finally:
        child.kill()
        child.wait()
    assert full == {"token": "UNAVAILABLE STATE_UNAVAILABLE",
                    "budget": "UNAVAILABLE STATE_UNAVAILABLE",
                    "load": "UNAVAILABLE STORE_UNAVAILABLE"}
    # Nothing was spent or loaded, and the token id that could not be written was not kept.
    assert after == {"spent": 1.0, "rows": 0, "token": "done"}
