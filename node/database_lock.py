"""Who has a city's database open: its running node, or a load run while no node runs.

DuckDB lets one process write a database file. The node, and `cityfed node ingest` when it
opens the database itself, hold an exclusive flock on `<database>.lock` for as long as they
have the database open. The kernel lets go of it when the holder exits, even when it is killed
with SIGKILL, so a node restarted at once finds it free. A load that finds it held goes through
the running node's admin socket and never opens the database behind the node's back; a node
that finds it held refuses to start, saying who holds it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from federation.errors import DatabaseInUse


class DatabaseLock:
    def __init__(self, path: Path, descriptor: int) -> None:
        self.path = path
        self._descriptor: int | None = descriptor

    @classmethod
    def hold(cls, path: Path, holder: str) -> DatabaseLock:
        """Take the lock for `holder` (a few words naming this process), or raise DatabaseInUse
        naming the process that holds it."""
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = _holder(descriptor)
            os.close(descriptor)
            raise DatabaseInUse(f"{path.with_suffix('')} is open in {other}") from None
        except BaseException:
            os.close(descriptor)
            raise
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{holder}, pid {os.getpid()}\n".encode(), 0)
        return cls(path, descriptor)

    def release(self) -> None:
        if self._descriptor is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._descriptor, 0)
            os.close(self._descriptor)  # closing the only descriptor lets go of the flock
            self._descriptor = None

    def __enter__(self) -> DatabaseLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _holder(descriptor: int) -> str:
    text = os.pread(descriptor, 200, 0).decode("utf-8", "replace").strip()
    return text or "another process"
