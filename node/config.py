"""A node's configuration: TOML in, frozen dataclass out."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any

from federation.config_files import build, read_toml
from federation.errors import ConfigError
from federation.query.datasets import DATASETS
from federation.serving.metrics import parse_listen
from federation.trust.pki import NAME

DESCRIPTION = "description"  # the key of a setting's description in its field's metadata


def setting(description: str, default: Any = MISSING, *,
            default_factory: Any = MISSING) -> Any:
    """A config field (required when it has no default) with the description
    docs/configuration.md gives it."""
    return field(default=default, default_factory=default_factory,
                 metadata={DESCRIPTION: description})


STORES = ("duckdb", "spark")


@dataclass(frozen=True)
class NodeConfig:
    """Every setting of a node. docs/configuration.md is generated from these fields and their
    descriptions (`make docs`); a test fails when one is undocumented."""

    city: str = setting("This node's member id in the manifest, like `tianjin`.")
    database: Path = setting(
        "The city's DuckDB file. With `store = \"spark\"` no DuckDB file is opened: the path "
        "only names the node's other files (state, admin socket, lock) where those are unset.")
    manifest: Path = setting(
        "The region's signed member manifest. The node refuses one that is unsigned, signed by "
        "another root, expired, older than the one it held before, or without a key that one "
        "lists; it takes a newer one written here while it runs (`manifest_watch_seconds`).")
    root_public_key: Path = setting(
        "The region's root public key, pinned: manifests must be signed by it.")
    tls_certificate: Path = setting(
        "This node's TLS certificate from the region's CA; its fingerprint must be the one "
        "the manifest lists for the city.")
    tls_private_key: Path = setting("The TLS certificate's private key.")
    tls_ca: Path = setting("The region's CA certificate: callers' certificates must chain to it.")
    signing_key: Path = setting(
        "This city's Ed25519 key as the manifest lists it: signs receipts and audit "
        "checkpoints.")
    policy: Path | None = setting(
        "The owner's sharing policy (docs/policy.md); without one the node refuses every "
        "question.", None)
    state_dir: Path | None = setting(
        "The node's state: the held manifest, the token ids seen, the audit log and the "
        "privacy budget. Unset: beside the database (`tianjin.duckdb` → `tianjin.state`).", None)
    display_name: str = setting("The city's name as people read it, like `天津`; unset: the "
                                "member id.", "")
    listen: str = setting("Address and port of the public gRPC server (mutual TLS only).",
                          "127.0.0.1:7401")
    admin_socket: Path | None = setting(
        "The operator's Unix socket for loads into the running node, open to the node's user "
        "only. Unset: beside the database (`tianjin.admin.sock`).", None)
    store: str = setting(
        "Where the city's data is read: `duckdb`, the embedded file `database` (loaded with "
        "`cityfed node ingest`), or `spark`, the city's own Spark (`spark_remote` or "
        "`spark_master`, and `spark_datasets`), read and never written: loads and database "
        "backups are the city's own pipeline's.", "duckdb")
    spark_remote: str = setting(
        "With `store = \"spark\"`: the Spark Connect address of the city's cluster, like "
        "`sc://spark.city.example:15002`, with Spark Connect's own options after `/;` (like "
        "`sc://spark.city.example:15002/;use_ssl=true;token=...`). The node opens two "
        "sessions on it (exact answers with ANSI mode on, private ones without) and sets in "
        "each the session time zone UTC, timestamps "
        "without time zone and no SQL on files; its jobs carry tags, and a deadline interrupts "
        "them (`interruptTag`). The server's Spark is 4.x; the node's Spark user needs read "
        "access to the datasets' tables or files only.", "")
    spark_master: str = setting(
        "With `store = \"spark\"` and no `spark_remote`: a Spark inside the node's process, "
        "like `local[2]`, for trying a node out (needs Java 17 and `pip install "
        "cityfed[spark]`).", "")
    spark_datasets: dict[str, str] = setting(
        "With `store = \"spark\"`: a `[node.spark_datasets]` table giving each standard "
        "dataset's location: Parquet files (a path or glob, like "
        "`\"/data/population/*.parquet\"`) or a catalog table (`\"table:warehouse.population\"`). "
        "A dataset not listed is one the city does not hold: its row count is 0 and questions "
        "about it are refused.", default_factory=dict)
    spark_count_cache_seconds: float = setting(
        "With `store = \"spark\"`: how long the datasets' row counts (`ListDatasets`, counted "
        "by one Spark job over every dataset) are kept before they are counted again. The data "
        "is the city's own pipeline's and changes rarely; 0: counted at every call.", 60.0)
    memory_limit: str = setting("DuckDB's memory limit.", "2GB")
    threads: int = setting("DuckDB's threads.", 2)
    max_workers: int = setting("Threads answering calls; calls beyond them wait for one.", 32)
    max_concurrent_rpcs: int = setting(
        "Calls answered at once, all callers together; more are refused with "
        "`RESOURCE_EXHAUSTED` (`OVERLOADED`).", 64)
    max_concurrent_per_caller: int | None = setting(
        "Calls answered at once for any one caller (the member its TLS certificate names); "
        "more are refused with `RESOURCE_EXHAUSTED` (`TOO_MANY_CALLS`). Must be below "
        "`max_workers`. Unset: a quarter of `max_concurrent_rpcs`, at most half the workers.",
        None)
    max_request_bytes: int = setting(
        "The largest request; a larger one is refused with `RESOURCE_EXHAUSTED` (`TOO_LARGE`).",
        1024 * 1024)
    max_response_bytes: int = setting("The largest response the node sends.", 64 * 1024 * 1024)
    max_result_groups: int = setting(
        "The most groups an answer may hold; a larger result is refused, never truncated.",
        100_000)
    max_query_seconds: float = setting(
        "The longest a query may run when the caller sets no shorter deadline.", 60.0)
    shutdown_grace_seconds: float = setting(
        "On SIGTERM or SIGINT, how long queries, linkage steps and loads under way may take "
        "to finish while new calls are refused; then queries are stopped and loads rolled back "
        "(a load already committing commits). Keep it below the supervisor's stop timeout.",
        15.0)
    audit_checkpoint_every: int = setting(
        "The audit log (docs/audit.md) signs a checkpoint every so many records, or "
        "`audit_checkpoint_seconds` after the first record none covers, whichever comes first.",
        1000)
    audit_checkpoint_seconds: float = setting(
        "Seconds after the first record no checkpoint covers before one is signed.", 10.0)
    audit_fsync: bool = setting(
        "fsync every audit record and budget charge before answering: slower, survives power "
        "loss; without it a record survives the node process being killed.", False)
    audit_segment_bytes: int = setting(
        "The audit log's records go to segment files of about this size; once one is full, the "
        "next checkpoint ends it and a new one begins. Old segments can be archived "
        "(`cityfed audit archive`); a node opens its log in the same time however many there "
        "are.", 64 * 1024 * 1024)
    linkage_session_seconds: float = setting(
        "The longest a linkage session (docs/linkage.md) may stay open.", 900.0)
    linkage_max_points: int = setting("The largest set this node blinds in one linkage.",
                                      20_000_000)
    linkage_max_sessions: int = setting("Linkage sessions open at once.", 4)
    linkage_workers: int = setting("Processes that blind linkage points; 0: one per core.", 0)
    metrics_listen: str = setting(
        "Address and port of the node's Prometheus metrics (plain HTTP, `GET /metrics`; "
        "docs/metrics.md), like `127.0.0.1:9464`: keep it on loopback, the metrics name "
        "members and purposes and have no authentication. Port 0: any free port, logged at "
        "start. Unset: no metrics.", "")
    manifest_watch_seconds: float = setting(
        "How often the node looks whether the manifest file changed, to take a newer signed one "
        "without a restart, with the checks of start-up; SIGHUP and `cityfed node "
        "reload-manifest` ask at once. 0: only when asked.", 1.0)

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

    @property
    def lock_path(self) -> Path:
        """Locked by whoever has the database open: the node, or a load run without it."""
        return Path(f"{self.database}.lock")


def limits_problem(config: NodeConfig) -> str | None:
    """What is wrong with the concurrency limits, if anything."""
    if config.threads < 1 or config.max_workers < 1 or config.max_concurrent_rpcs < 1:
        return "threads, max_workers and max_concurrent_rpcs must be ≥ 1"
    if config.shutdown_grace_seconds < 0:
        return "shutdown_grace_seconds must be 0 or more"
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
    if config.spark_count_cache_seconds < 0:
        return "spark_count_cache_seconds must be 0 (no cache) or more"
    if config.manifest_watch_seconds < 0:
        return "manifest_watch_seconds must be 0 (no watch) or more"
    return store_problem(config)


def store_problem(config: NodeConfig) -> str | None:
    """What is wrong with the store's settings, if anything."""
    if config.store not in STORES:
        return f"store must be one of {', '.join(STORES)}"
    spark_settings = config.spark_remote or config.spark_master or config.spark_datasets
    if config.store != "spark":
        return ("spark_remote, spark_master and spark_datasets need store = \"spark\""
                if spark_settings else None)
    if bool(config.spark_remote) == bool(config.spark_master):
        return "store = \"spark\" needs one of spark_remote (Spark Connect) or spark_master"
    if config.spark_remote and not config.spark_remote.startswith("sc://"):
        return "spark_remote must be a Spark Connect address, like sc://host:15002"
    unknown = sorted(set(config.spark_datasets) - set(DATASETS))
    if unknown:
        return (f"spark_datasets names no standard dataset {unknown[0][:64]!r}; known: "
                f"{', '.join(DATASETS)}")
    for name, location in config.spark_datasets.items():
        if not isinstance(location, str) or not location.strip():
            return f"spark_datasets.{name} must be a Parquet path or \"table:<name>\""
    return None


def load_config(path: Path) -> NodeConfig:
    table = read_toml(path)
    config = build(NodeConfig, table.get("node", table), path, "[node] ")
    problem = limits_problem(config)
    if problem:
        raise ConfigError(f"{path}: [node] {problem}")
    if not NAME.fullmatch(config.city):
        raise ConfigError(f"{path}: [node] key 'city' must be a member id like 'tianjin'")
    if config.metrics_listen:
        try:
            parse_listen(config.metrics_listen)
        except ConfigError as error:
            raise ConfigError(f"{path}: [node] {error}") from None
    return config
