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
    # Threads answering calls; calls beyond them wait for one.
    max_workers: int = 32
    # Calls answered at once, all callers together, and by any one caller (the member its TLS
    # certificate names); unset: a quarter of max_concurrent_rpcs, at most half the workers.
    max_concurrent_rpcs: int = 64
    max_concurrent_per_caller: int | None = None
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
    # Linkage (docs/linkage.md): how long a session may stay open, the largest set this node
    # blinds, how many sessions may be open at once, and the processes that blind (0: a core
    # each).
    linkage_session_seconds: float = 900.0
    linkage_max_points: int = 20_000_000
    linkage_max_sessions: int = 4
    linkage_workers: int = 0

    @property
    def admin_socket_path(self) -> Path:
        return self.admin_socket or self.database.with_suffix(".admin.sock")

    @property
    def state_path(self) -> Path:
        return self.state_dir or self.database.with_suffix(".state")

    @property
    def per_caller_limit(self) -> int:
        if self.max_concurrent_per_caller is not None:
            return self.max_concurrent_per_caller
        return max(1, min(self.max_concurrent_rpcs // 4, self.max_workers // 2))

    @property
    def private_paths(self) -> tuple[Path, ...]:
        """What only the node's user may read: its state (held manifest, token ids, audit log,
        privacy budget), the database and DuckDB's write-ahead log and spill folder."""
        return (self.state_path, self.database, Path(f"{self.database}.wal"),
                Path(f"{self.database}.tmp"))


def limits_problem(config: NodeConfig) -> str | None:
    """What is wrong with the concurrency limits, if anything."""
    if config.threads < 1 or config.max_workers < 1 or config.max_concurrent_rpcs < 1:
        return "threads, max_workers and max_concurrent_rpcs must be ≥ 1"
    per_caller = config.per_caller_limit
    if not 1 <= per_caller <= config.max_concurrent_rpcs:
        return "max_concurrent_per_caller must be between 1 and max_concurrent_rpcs"
    if per_caller >= config.max_workers:
        return ("max_concurrent_per_caller must be below max_workers: one caller must never "
                "hold every thread")
    if (config.linkage_session_seconds <= 0 or config.linkage_max_points < 1
            or config.linkage_max_sessions < 1 or config.linkage_workers < 0):
        return ("linkage_session_seconds, linkage_max_points and linkage_max_sessions must be "
                "above 0, linkage_workers 0 (a process per core) or more")
    return None


def load_config(path: Path) -> NodeConfig:
    table = read_toml(path)
    config = build(NodeConfig, table.get("node", table), path, "[node] ")
    problem = limits_problem(config)
    if problem:
        raise ConfigError(f"{path}: [node] {problem}")
    if not NAME.fullmatch(config.city):
        raise ConfigError(f"{path}: [node] key 'city' must be a member id like 'tianjin'")
    return config
