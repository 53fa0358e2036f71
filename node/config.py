"""A node's configuration: TOML in, frozen dataclass out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from federation.config_files import build, read_toml
from federation.errors import ConfigError
from federation.pki import NAME


@dataclass(frozen=True)
class NodeConfig:
    city: str
    database: Path
    # Trust: the region's signed manifest, its pinned root key, this node's TLS identity.
    manifest: Path
    root_public_key: Path
    tls_certificate: Path
    tls_private_key: Path
    tls_ca: Path
    # This city's Ed25519 key as the manifest lists it: signs receipts and audit checkpoints.
    signing_key: Path
    # The owner's sharing policy; without one the node refuses every question.
    policy: Path | None = None
    # The held manifest and the token ids seen; beside the database if unset.
    state_dir: Path | None = None
    display_name: str = ""
    listen: str = "127.0.0.1:7401"
    # The operator's Unix socket for loads into the running node; next to the database if unset.
    admin_socket: Path | None = None
    memory_limit: str = "2GB"
    threads: int = 2
    max_workers: int = 16
    max_concurrent_rpcs: int = 64
    max_request_bytes: int = 1024 * 1024
    max_response_bytes: int = 64 * 1024 * 1024
    max_result_groups: int = 100_000
    # The longest a query may run when the caller sets no shorter deadline.
    max_query_seconds: float = 60.0
    # Audit: a signed checkpoint every so many records or seconds; fsync every record (slower,
    # survives power loss; without it a record survives the process being killed).
    audit_checkpoint_every: int = 1000
    audit_checkpoint_seconds: float = 10.0
    audit_fsync: bool = False

    @property
    def admin_socket_path(self) -> Path:
        return self.admin_socket or self.database.with_suffix(".admin.sock")

    @property
    def state_path(self) -> Path:
        return self.state_dir or self.database.with_suffix(".state")

    @property
    def private_paths(self) -> tuple[Path, ...]:
        """What only the node's user may read: its state (held manifest, token ids, audit log,
        privacy budget), the database and DuckDB's write-ahead log and spill folder."""
        return (self.state_path, self.database, Path(f"{self.database}.wal"),
                Path(f"{self.database}.tmp"))


def load_config(path: Path) -> NodeConfig:
    table = read_toml(path)
    config = build(NodeConfig, table.get("node", table), path, "[node] ")
    if config.threads < 1 or config.max_workers < 1 or config.max_concurrent_rpcs < 1:
        raise ConfigError(f"{path}: threads, max_workers and max_concurrent_rpcs must be ≥ 1")
    if not NAME.fullmatch(config.city):
        raise ConfigError(f"{path}: [node] key 'city' must be a member id like 'tianjin'")
    return config
