"""Files only their owner may read: a node's database, state, audit log, logs and socket, and
what `cityfed region generate` writes (keys, stores, ground truth), checked with os.stat on
the files the real commands make, under a umask that would have left them readable."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from cli.main import main
from federation.coordination.coordinator import CityStatus, Coordinator
from federation.synthetic import RegionScale
from federation.synthetic.local_region import AUTHORITY, start_local_region, write_region
from tests import regionkit
from tests.test_ingest import rows, write_csv

SMALL = RegionScale(people_per_city=200, trips_per_city=500, visits_per_city=200)


@pytest.fixture
def loose_umask():
    """The umask most shells start with: new files world-readable unless the code says not."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def readable_by_others(*roots: Path) -> list[str]:
    """Every file or folder under the roots that its group or the world may use."""
    found = []
    for root in roots:
        for path in [root, *(root.rglob("*") if root.is_dir() else ())]:
            if path.exists() and not path.is_symlink() and mode(path) & 0o077:
                found.append(f"{path} {mode(path):04o}")
    return found


def test_a_node_process_keeps_its_database_state_log_and_socket_to_its_user(tmp_path,
                                                                           loose_umask):
    trusted = write_region(tmp_path, scale=SMALL, cities=("tianjin",))
    with start_local_region(tmp_path, ("tianjin",)):
        manifest, identity = trusted.directory.open_as(AUTHORITY)
        with Coordinator(manifest, identity) as coordinator:
            answer = coordinator.ask_sql("SELECT mode, count(*) FROM transit_trips GROUP BY mode",
                                         purpose="transit-planning", cities=("tianjin",))
        assert answer.outcomes[0].status is CityStatus.ANSWERED
        # A load through the admin socket: DuckDB writes a new write-ahead log for it.
        csv = write_csv(tmp_path / "load.csv", rows(5))
        assert main(["node", "ingest", str(csv), "--config", str(tmp_path / "tianjin.toml"),
                     "--dataset", "social_insurance", "--append"]) == 0
        state = tmp_path / "tianjin.state"
        socket = tmp_path / "tianjin.admin.sock"
        assert {p.name for p in state.rglob("*")} >= {
            "manifest.json", "seen_tokens.sqlite", "audit", "audit.log", "checkpoints.log"}
        assert mode(state) == mode(state / "audit") == 0o700
        assert mode(state / "audit" / "audit.log") == mode(socket) == 0o600
        assert readable_by_others(state, socket, tmp_path / "tianjin.log",
                                  *tmp_path.glob("tianjin.duckdb*")) == []


def test_a_node_tightens_what_it_finds_readable_and_says_so(tmp_path, loose_umask, caplog):
    region = regionkit.start_region(tmp_path, ("tianjin",), rows=50)
    config = region.nodes["tianjin"].config
    region.stop()
    loosened = [config.database, config.state_path / "audit" / "audit.log",
                config.state_path / "seen_tokens.sqlite", config.state_path / "manifest.json"]
    for path in loosened:
        os.chmod(path, 0o644)
    os.chmod(config.state_path, 0o755)

    with caplog.at_level(logging.WARNING, logger="node.server"):
        node = regionkit.start_nodes(region.trusted, ("tianjin",), regionkit.open_policy())
    try:
        assert readable_by_others(config.state_path, config.database) == []
        assert mode(config.state_path) == 0o700 and mode(config.database) == 0o600
        for path in (*loosened, config.state_path):
            assert any(str(path) in message and "only the node's user" in message
                       for message in caplog.messages), path
    finally:
        node["tianjin"].stop(grace=None)


def test_region_generate_writes_keys_stores_and_ground_truth_for_its_user_only(tmp_path,
                                                                             loose_umask):
    folder = tmp_path / "region"
    assert main(["region", "generate", str(folder), "--people", "100", "--trips", "100",
                 "--visits", "100"]) == 0
    secrets = [folder / "root" / "root.key", folder / "root" / "ca.key",
               folder / "ground_truth.json", *folder.glob("members/*/*.key"),
               *folder.glob("*.duckdb")]
    assert len(secrets) >= 2 + 1 + 2 * 6 + 5
    assert {str(p): mode(p) for p in secrets} == {str(p): 0o600 for p in secrets}
    folders = [folder, folder / "root", folder / "members", *folder.glob("members/*")]
    assert {str(p): mode(p) for p in folders} == {str(p): 0o700 for p in folders}
    assert mode(folder / "root" / "root.pub") == 0o644  # public: every node pins it
