"""The node's memory of request-token ids (jti), so that no token is accepted twice, also after
a restart. SQLite in WAL mode: a commit survives the process being killed."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

PURGE_EVERY = 1_000


class ReplayCache:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Created private before SQLite opens it: its -wal and -shm files take the same mode.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600))
        self._lock = threading.Lock()
        self._connection = sqlite3.connect(str(path), check_same_thread=False,
                                           isolation_level=None)
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute("PRAGMA synchronous=NORMAL")
        self._connection.execute(
            "CREATE TABLE IF NOT EXISTS seen_tokens (jti TEXT PRIMARY KEY, forget_after INTEGER)")
        self._since_purge = 0

    def remember(self, jti: str, forget_after: int) -> bool:
        """Record a token id until `forget_after` (unix seconds); False if it was seen before."""
        with self._lock:
            inserted = self._connection.execute(
                "INSERT OR IGNORE INTO seen_tokens VALUES (?, ?)", (jti, forget_after)).rowcount
            self._since_purge += 1
            if self._since_purge >= PURGE_EVERY:
                self._connection.execute("DELETE FROM seen_tokens WHERE forget_after < ?",
                                         (int(time.time()),))
                self._since_purge = 0
        return inserted == 1

    def close(self) -> None:
        with self._lock:
            self._connection.close()
