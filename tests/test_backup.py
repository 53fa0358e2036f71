"""Backups and disaster recovery (issue 11, problem 5): a running node backs itself up under
load, the node is destroyed, the backup is restored on another host and verified, every receipt
issued before the backup still matches its record, and no audit index is ever used twice."""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
import sqlite3
import threading
import time
from pathlib import Path

import grpc
import pytest
from cityfed.v1 import admin_pb2, admin_pb2_grpc

from cli.main import main
from federation.coordination.coordinator import CityStatus, Coordinator
from federation.errors import ConfigError, InvalidArgument
from federation.synthetic import RegionScale
from federation.synthetic.local_region import (
    AUTHORITY,
    DEMO_POLICY,
    node_address,
    spawn_node_process,
    start_local_region,
    write_region,
)
from federation.trust.keys import public_key_from_text
from federation.trust.manifest import load_manifest
from federation.trust.receipts import verify_receipt_signature
from node.audit import (
    prove_inclusion,
    read_records,
    segments,
    verify_log,
    verify_record_inclusion,
)
from node.backup import BACKUP_FILE, DATABASE_FILE, BackupInvalid, restore
from tests import regionkit

CITY = "tianjin"
SQL = "SELECT mode, count(*) FROM transit_trips GROUP BY mode"


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    return main(list(argv), out=out, err=err), out.getvalue(), err.getvalue()


def trust_arguments(region: Path) -> tuple[str, ...]:
    return ("--manifest", str(region / "manifest.json"),
            "--root-public-key", str(region / "root" / "root.pub"))


# One node in this process: what a backup holds, and what a restore refuses ----------------


@pytest.fixture(scope="module")
def backed_up(tmp_path_factory):
    """A node that answered a few questions and was backed up, and the config of an empty
    node for the same city on "another host"."""
    directory = tmp_path_factory.mktemp("region")
    region = regionkit.start_region(directory, (CITY,), rows=300)
    node = region.nodes[CITY]
    config_file = directory / f"{CITY}.toml"
    config_file.write_text(regionkit.config_toml(node.config))
    for _ in range(5):
        assert region.ask("SELECT sex, count(*) FROM population GROUP BY sex").outcomes
    code, out, _ = cli("node", "backup", "--config", str(config_file),
                       str(directory / "backup"))
    assert code == 0 and "audit log records 0..4" in out, out
    for _ in range(3):  # the node goes on after its backup
        region.ask("SELECT sex, count(*) FROM population GROUP BY sex")
    node.audit.checkpoint()
    later = node.audit.size
    held = directory / "checkpoints.json"
    assert cli("audit", "export-checkpoints", str(node.config.state_path / "audit"), "--out",
               str(held))[0] == 0
    other_host = directory / "host2"
    other_host.mkdir()
    restored = dataclasses.replace(node.config, database=other_host / f"{CITY}.duckdb",
                                   admin_socket=other_host / f"{CITY}.admin.sock")
    (other_host / f"{CITY}.toml").write_text(regionkit.config_toml(restored))
    yield directory, node, restored, later, held
    region.stop()


def fresh_copy(backed_up, name: str) -> tuple[Path, object]:
    """The backup copied (as to off-site storage), and an empty node config to restore into."""
    directory, _, restored, *_ = backed_up
    copy = directory / name / "backup"
    shutil.copytree(directory / "backup", copy)
    config = dataclasses.replace(restored, database=directory / name / f"{CITY}.duckdb")
    return copy, config


def test_a_backup_holds_every_file_signed_with_its_hash(backed_up):
    directory, node, *_ = backed_up
    backup = directory / "backup"
    described = json.loads((backup / BACKUP_FILE).read_text())
    assert described["city"] == CITY and described["audit"]["checkpoint"]["size"] == 5
    assert set(described["files"]) >= {DATABASE_FILE, "state/manifest.json",
                                       "state/budget.sqlite", "state/seen_tokens.sqlite",
                                       "state/audit/audit.log", "state/audit/checkpoints.log",
                                       "state/audit/head.json", "policy.toml"}
    assert described["row_counts"] == node.store.row_counts()
    with sqlite3.connect(backup / "state" / "seen_tokens.sqlite") as tokens:
        assert tokens.execute("SELECT count(*) FROM seen_tokens").fetchone()[0] == 5
    code, out, _ = cli("node", "verify-backup", str(backup), *trust_arguments(directory))
    assert code == 0 and out.startswith("OK") and "records 0..4 verified" in out
    assert all(oct(path.stat().st_mode)[-3:] in ("600", "700") for path in backup.rglob("*"))


def test_the_node_refuses_a_backup_folder_that_is_not_new(backed_up):
    directory, node, *_ = backed_up
    with grpc.insecure_channel(f"unix:{node.config.admin_socket_path}") as channel:
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        for folder in (str(directory / "backup"), "relative/folder"):
            with pytest.raises(grpc.RpcError) as refused:
                admin.Backup(admin_pb2.BackupRequest(directory=folder))
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    methods = [r["method"] for r in read_records(node.config.state_path / "audit")]
    assert methods.count("/cityfed.v1.AdminService/Backup") >= 3  # every call is recorded


@pytest.mark.parametrize("damage, message", [
    (lambda b: (b / DATABASE_FILE).write_bytes((b / DATABASE_FILE).read_bytes()[:-4096]),
     "database.duckdb is not the file the node backed up"),
    (lambda b: (b / "state" / "audit" / "audit.log").write_text(
        (b / "state" / "audit" / "audit.log").read_text().replace("population", "populatioN")),
     "state/audit/audit.log is not the file"),
    (lambda b: (b / "state" / "budget.sqlite").unlink(), "state/budget.sqlite is missing"),
    (lambda b: (b / "extra.txt").write_text("x"), "extra.txt is not part of the backup"),
    (lambda b: (b / BACKUP_FILE).write_text((b / BACKUP_FILE).read_text().replace(
        '"policy.toml":{"bytes":', '"policy.toml":{"bytes":1')), "does not verify"),
])
def test_a_restore_verifies_the_backup_first_and_installs_nothing_if_it_is_altered(
        backed_up, tmp_path, damage, message):
    copy, config = fresh_copy(backed_up, tmp_path.name)
    damage(copy)
    with pytest.raises(BackupInvalid, match=message):
        restore(copy, config, last_index=100)
    assert not config.database.exists() and not config.state_path.exists()


def test_a_restore_needs_the_last_index_known_and_an_empty_place(backed_up, tmp_path):
    copy, config = fresh_copy(backed_up, tmp_path.name)
    with pytest.raises(InvalidArgument, match="--last-index"):
        restore(copy, config, last_index=None)
    config.state_path.mkdir(parents=True)
    (config.state_path / "manifest.json").write_text("{}")
    with pytest.raises(ConfigError, match="already exist"):
        restore(copy, config, last_index=4)


def test_the_authoritys_checkpoints_say_how_far_the_node_went(backed_up, tmp_path):
    *_, later, held = backed_up
    copy, config = fresh_copy(backed_up, tmp_path.name)
    restored = restore(copy, config, last_index=None,
                       held_checkpoints=json.loads(held.read_text()))
    assert restored.lost == later - 5 and restored.next_index == later + 1
    records = list(read_records(config.state_path / "audit"))
    assert [r.get("event") for r in records[5:]] == ["lost"] * (later - 5) + ["restored"]
    assert records[-1]["restored_from"] == 5 and records[-1]["lost_records"] == later - 5

    # Checkpoints of another log, or that the backup's records do not give, are refused.
    copy, config = fresh_copy(backed_up, tmp_path.name + "-forged")
    forged = json.loads(held.read_text())
    forged[0]["root"] = "00" * 32
    with pytest.raises(BackupInvalid, match="not a checkpoint tianjin signed"):
        restore(copy, config, last_index=None, held_checkpoints=forged)


# Disaster recovery, end to end, with node processes ------------------------------------------


def test_back_up_under_load_destroy_the_node_restore_elsewhere_and_verify(tmp_path):
    """The off-site procedure of docs/operations.md, as an operator runs it."""
    policy = DEMO_POLICY.replace("epsilon_per_period = 10.0", "epsilon_per_period = 10000.0") \
        .replace("delta_per_period = 1e-6", "delta_per_period = 1e-3")
    trusted = write_region(tmp_path, scale=RegionScale(people_per_city=500, trips_per_city=2_000,
                                                       visits_per_city=500),
                           cities=("beijing", CITY), policy=policy)
    config_file = tmp_path / f"{CITY}.toml"
    manifest, identity = trusted.directory.open_as(AUTHORITY)
    answered: list = []
    stop = threading.Event()

    def ask_until_stopped() -> None:
        with Coordinator(manifest, identity) as coordinator:
            while not stop.is_set():
                answer = coordinator.ask_sql(SQL, purpose="transit-planning", cities=(CITY,),
                                             timeout=5)
                for outcome in answer.outcomes:
                    if outcome.status is CityStatus.ANSWERED:
                        answered.append(outcome.receipt)

    with start_local_region(tmp_path, (CITY,)) as running:
        askers = [threading.Thread(target=ask_until_stopped) for _ in range(3)]
        for asker in askers:
            asker.start()
        wait_for(lambda: len(answered) >= 30)
        code, out, _ = cli("node", "backup", "--config", str(config_file),
                           str(tmp_path / "backup"))  # under load
        assert code == 0, out
        during = len(answered)
        wait_for(lambda: len(answered) >= during + 30)  # the node goes on after the backup
        running.kill(CITY)  # the disaster
        stop.set()
        for asker in askers:
            asker.join()

    before = json.loads((tmp_path / "backup" / BACKUP_FILE).read_text())
    size = before["audit"]["checkpoint"]["size"]
    issued = list(answered)
    assert min(r.audit_index for r in issued) < size <= max(r.audit_index for r in issued)

    # The node's files are gone; the backup went off-site and comes back to another host.
    for path in tmp_path.glob(f"{CITY}.*"):
        if path.suffix != ".toml" and "policy" not in path.name:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    host = tmp_path / "host2"
    shutil.copytree(tmp_path / "backup", host / "from-off-site")
    shutil.rmtree(tmp_path / "backup")
    config_text = config_file.read_text().replace(f'database = "{CITY}.duckdb"',
                                                  f'database = "host2/{CITY}.duckdb"')
    new_config = tmp_path / "host2.toml"
    new_config.write_text(config_text)
    last_known = max(r.audit_index for r in issued)
    code, out, _ = cli("node", "restore", "--config", str(new_config),
                       str(host / "from-off-site"), "--last-index", str(last_known))
    assert code == 0, out
    assert f"its next record is {last_known + 2}" in out

    audit = host / f"{CITY}.state" / "audit"
    code, out, _ = cli("audit", "verify", str(audit), *trust_arguments(tmp_path))
    assert code == 0 and out.startswith("OK"), out
    root = public_key_from_text((tmp_path / "root" / "root.pub").read_text().strip())
    manifest = load_manifest(tmp_path / "manifest.json", root)
    records = list(read_records(audit))
    line_of = dict(enumerate(b"".join(path.read_bytes() for _, path in segments(audit))
                             .split(b"\n")))
    checkpoint = json.loads((audit / "checkpoints.log").read_text().splitlines()[-1])
    for receipt in issued:
        verify_receipt_signature(receipt, manifest)
        record = records[receipt.audit_index]
        if receipt.audit_index < size:  # issued before the backup: its record is as it was
            assert (record["jti"], record["response_sha256"]) == (receipt.jti,
                                                                 receipt.response_sha256)
            proof = prove_inclusion(audit, receipt.audit_index, checkpoint["size"])
            assert verify_record_inclusion(line_of[receipt.audit_index], receipt.audit_index,
                                           checkpoint, proof, manifest)
        else:  # issued after it: lost with the node, and its index is never used again
            assert record["event"] == "lost" and "jti" not in record

    # The restored node starts on the other host and answers; its records come after.
    process = spawn_node_process(new_config)
    try:
        node_address(process, new_config)
        with Coordinator(manifest, identity) as coordinator:
            answer = coordinator.ask_sql(SQL, purpose="transit-planning", cities=(CITY,))
        (outcome,) = answer.outcomes
        assert outcome.status is CityStatus.ANSWERED, outcome.detail
        assert outcome.receipt.audit_index == last_known + 2
    finally:
        process.terminate()
        process.wait(30)
    assert verify_log(audit, manifest, city=CITY).ok


def wait_for(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
