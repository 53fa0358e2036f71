"""Files only their owner may read: a umask around their creation (files 0600, folders 0700),
and tightening of what already exists with looser modes.

The umask is the process's, shared by every thread: one lock orders every change of it, so a
block that narrows it always restores what was there before."""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
_OTHERS = 0o077  # group and world permission bits

_umask_lock = threading.Lock()


@contextlib.contextmanager
def owner_only() -> Iterator[None]:
    """Whatever is created while the block runs is this user's alone (umask 077)."""
    with _umask_lock:
        previous = os.umask(_OTHERS)
        try:
            yield
        finally:
            os.umask(previous)


def owner_only_from_now_on() -> None:
    """Whatever this process creates from now on is its user's alone: for a server whose
    libraries create files long after it started (DuckDB writes a new WAL after every
    checkpoint, SQLite its -wal and -shm files)."""
    with _umask_lock:
        previous = os.umask(_OTHERS)
        os.umask(previous | _OTHERS)


@dataclass(frozen=True)
class Tightened:
    path: Path
    was: int
    now: int

    def __str__(self) -> str:
        return f"{self.path}: mode {self.was:04o} → {self.now:04o}"


def tighten(path: Path) -> list[Tightened]:
    """Take every group and world permission off `path` and, for a folder, off everything in it
    (symbolic links are neither changed nor followed). Returns what changed; a missing path
    changes nothing."""
    changed = []
    for each in _tree(Path(path)):
        mode = stat.S_IMODE(each.lstat().st_mode)
        if mode & _OTHERS:
            os.chmod(each, mode & ~_OTHERS)
            changed.append(Tightened(each, mode, mode & ~_OTHERS))
    return changed


def open_to_others(path: Path) -> list[Path]:
    """What `tighten` would change: `path`, or anything in it, that its group or others may
    use (symbolic links neither counted nor followed)."""
    return [each for each in _tree(Path(path)) if stat.S_IMODE(each.lstat().st_mode) & _OTHERS]


def _tree(path: Path) -> Iterator[Path]:
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        return
    yield path
    if stat.S_ISDIR(info.st_mode):
        for root, folders, files in os.walk(path):
            for name in (*folders, *files):
                child = Path(root) / name
                if not child.is_symlink():
                    yield child


def private_folder(path: Path) -> Path:
    """Create a folder (and its missing parents) readable by this user only; tighten the folder
    itself when it exists with a looser mode. Its contents are left as they are."""
    path = Path(path)
    with owner_only():
        path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & _OTHERS:
        os.chmod(path, mode & ~_OTHERS)
    return path


def open_private_log(path: Path):
    """A new, empty log file that only this user may read (an older file of that name is
    replaced, not reused: whoever had it open keeps only the old one)."""
    path = Path(path)
    path.unlink(missing_ok=True)
    handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
                     PRIVATE_FILE)
    return os.fdopen(handle, "w")
