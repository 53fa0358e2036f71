"""The node's memory of request-token ids (jti), so that no token is accepted twice, also after
a restart. SQLite in WAL mode: a commit survives the process being killed. A token id that
cannot be written (a full disk) refuses the call: accepting it unrecorded would let it be
replayed."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from pathlib import Path

from federation.errors import StateUnavailable

log = logging.getLogger(__name__)

PURGE_EVERY = 1_000


class ReplayCache:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # Created private before SQLite opens it: its -wal and -shm files take the same mode.
            os.close(os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600))
            self._connection = open_sqlite(path, "PRAGMA synchronous=NORMAL",
                                           "CREATE TABLE IF NOT EXISTS seen_tokens "
                                           "(jti TEXT PRIMARY KEY, forget_after INTEGER)")
        except (OSError, sqlite3.Error) as error:
            raise StateUnavailable(f"cannot open the memory of token ids {path}: "
                                   f"{write_failure(error)}") from None
        self._lock = threading.Lock()
        self._since_purge = 0

    def remember(self, jti: str, forget_after: int) -> bool:
        """Record a token id until `forget_after` (unix seconds); False if it was seen before.
        Raises StateUnavailable when the id cannot be written."""
        with self._lock:
            try:
                inserted = self._connection.execute(
                    "INSERT OR IGNORE INTO seen_tokens VALUES (?, ?)",
                    (jti, forget_after)).rowcount
                self._since_purge += 1
                if self._since_purge >= PURGE_EVERY:
                    self._connection.execute("DELETE FROM seen_tokens WHERE forget_after < ?",
                                             (int(time.time()),))
                    self._since_purge = 0
            except sqlite3.Error as error:
                log.error("%s: cannot record a token id: %s", self.path, write_failure(error))
                raise StateUnavailable("this node cannot record the request token's id (its "
                                       "disk may be full); try again later") from None
        return inserted == 1

    def close(self) -> None:
        with self._lock:
            self._connection.close()


def write_failure(error: OSError | sqlite3.Error) -> str:
    """What went wrong, in the operating system's or SQLite's words (never a value)."""
    if isinstance(error, OSError):
        return error.strerror or type(error).__name__
    return str(error) or type(error).__name__


def open_sqlite(path: Path, *statements: str) -> sqlite3.Connection:
    """A connection in WAL mode shared by threads (each use under the caller's lock), with
    `statements` run; closed again if any of them fails."""
    connection = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        for statement in statements:
            connection.execute(statement)
    except BaseException:
        connection.close()
        raise
    return connection
