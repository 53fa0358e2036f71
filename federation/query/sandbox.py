"""DuckDB connections with external access, extensions and configuration changes locked off."""

from __future__ import annotations

from pathlib import Path

import duckdb

LOCKED_SETTINGS = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "allow_unsigned_extensions": False,
}


def sandboxed_connection(
    database: Path | str, *, memory_limit: str = "1GB", threads: int = 2, read_only: bool = False
) -> duckdb.DuckDBPyConnection:
    """Open a database so that nothing run on it can reach files, the network or extensions,
    or change its own settings. Settings are given at open time, then locked."""
    config = {**LOCKED_SETTINGS, "memory_limit": memory_limit, "threads": threads}
    connection = duckdb.connect(str(database), read_only=read_only, config=config)
    connection.execute("SET enable_progress_bar = false")  # never draw on a node's terminal
    connection.execute("SET lock_configuration = true")
    return connection


def sandboxed_memory_connection() -> duckdb.DuckDBPyConnection:
    return sandboxed_connection(":memory:", memory_limit="256MB", threads=1)
