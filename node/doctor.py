"""`cityfed node doctor`: a node's setup checked as its operator would check it, each problem with
what to fix; and the one line a node that cannot start prints instead of a traceback."""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

from federation.errors import CityfedError, StateUnavailable
from node.config import NodeConfig

# Below this much free space a disk the node writes to is a problem, below WARN_FREE a warning.
MIN_FREE = 64 * 1024 * 1024
WARN_FREE = 1024 * 1024 * 1024
_FULL = (errno.ENOSPC, errno.EDQUOT)


@dataclass(frozen=True)
class Disk:
    """A filesystem the node writes to, by the first of the node's folders found on it."""

    folder: Path
    free: int
    total: int


def disks(config: NodeConfig) -> list[Disk]:
    """The filesystems holding the node's state, its database (and DuckDB's write-ahead log and
    spill folder beside it) and its admin socket, each once."""
    found: dict[int, Disk] = {}
    for folder in (config.state_path, config.database.parent, config.admin_socket_path.parent):
        existing = _existing(folder)
        info = os.statvfs(existing)
        device = existing.stat().st_dev
        if device not in found:
            found[device] = Disk(folder, info.f_bavail * info.f_frsize,
                                 info.f_blocks * info.f_frsize)
    return list(found.values())


def _existing(path: Path) -> Path:
    """The path, or its nearest ancestor that exists (a state folder not created yet)."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def size_text(count: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError


def cannot_start(config: NodeConfig, error: OSError) -> CityfedError:
    """The error a node that failed to start on an operating-system error reports: what failed,
    and for a full disk, which of the node's folders is on it."""
    what = error.strerror or str(error) or type(error).__name__
    if error.filename:
        what += f": {error.filename}"
    if error.errno in _FULL:
        full = [disk for disk in disks(config) if disk.free < MIN_FREE] or disks(config)
        where = "; ".join(f"the disk holding {disk.folder} has {size_text(disk.free)} free"
                          for disk in full)
        advice = f"{where}: free space there and start the node again"
    elif error.errno == errno.EFBIG:
        advice = ("a file reached the node's file-size limit (ulimit -f, systemd's "
                  "LimitFSIZE=): raise the limit and start the node again")
    else:
        advice = "fix that and start the node again (`cityfed node doctor` checks the rest)"
    return StateUnavailable(f"{config.city} cannot start: {what}; {advice}")
