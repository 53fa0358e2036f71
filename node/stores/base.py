"""What the node asks of a store, whichever engine holds the city's data: the servicers, the
linkage and the backup call these methods and nothing else."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import pyarrow as pa

from federation.errors import CityfedError
from federation.query.compile import Dialect
from node.compile import CompiledKeys, CompiledPlan, PrivatePlan
from node.ingest import IngestMode, IngestResult, Load

# Registers a function to call when the caller cancels; returns False if already cancelled.
OnCancel = Callable[[Callable[[], None]], bool]


class Store(Protocol):
    """One city's standard datasets, read through compiled plans only."""

    @property
    def engine(self) -> str:
        """The engine's name as an operator reads it: "duckdb" or "spark"."""
        ...

    @property
    def dialect(self) -> Dialect:
        """How the plans this store runs are compiled (node.compile)."""
        ...

    def row_counts(self) -> dict[str, int]:
        """Every standard dataset's row count (0 for one the city does not hold)."""
        ...

    def aggregate(self, compiled: CompiledPlan | PrivatePlan, *, timeout: float,
                  on_cancel: OnCancel | None = None) -> list[tuple]:
        """Run a compiled plan, stopped when `timeout` seconds pass (DeadlineExceeded) or the
        caller cancels (Cancelled). An exact plan returns at most max_result_groups rows
        (TooLarge beyond); a private plan's candidate rows are not limited here."""
        ...

    def check_result_size(self, groups: int) -> None:
        """TooLarge when `groups` is more than the node may return."""
        ...

    def linkage_keys(self, compiled: CompiledKeys, *, timeout: float,
                     on_cancel: OnCancel | None = None) -> pa.StringArray:
        """A linkage side's distinct key values."""
        ...

    def ingest(self, dataset: str, path: Path, mode: IngestMode,
               load: Load | None = None) -> IngestResult:
        """Load a file into a dataset, all or nothing."""
        ...

    def snapshot(self, target: Path, *, timeout: float) -> dict[str, int]:
        """Copy the data as it stands to `target` for a backup (a store over the city's own
        engine copies nothing); its row counts."""
        ...

    def stop_all(self, kind: type[CityfedError], why: str) -> None:
        """Stop everything under way and refuse what comes, with a `kind` error saying `why`."""
        ...

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is under way; False if something still is after `timeout`."""
        ...

    def close(self) -> None:
        ...


class WorkUnderWay:
    """The queries and loads a store runs, so that a node that stops can stop them: each store
    runs its work inside `_stoppable`, with how to stop it."""

    def __init__(self) -> None:
        self._running: dict[Callable[[CityfedError], object], str] = {}
        self._stopping: tuple[type[CityfedError], str] | None = None
        self._idle = threading.Condition()

    def stop_all(self, kind: type[CityfedError], why: str) -> None:
        """Stop every query and load under way, and refuse any from now on, with a `kind` error
        saying `why`: queries are interrupted, loads roll back unless they are committing."""
        with self._idle:
            self._stopping = (kind, why)
            running = list(self._running.items())
        for stop, what in running:
            stop(kind(f"{what}: {why}"))

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no query or load is under way; False if some still is after `timeout`."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._running, timeout)

    @contextlib.contextmanager
    def _stoppable(self, what: str, stop: Callable[[CityfedError], object]) -> Iterator[None]:
        """Run work that stop_all stops by calling `stop(error)`; `what` it was, the error says."""
        with self._idle:
            if self._stopping is not None:
                kind, why = self._stopping
                raise kind(f"{what}: {why}")
            self._running[stop] = what
        try:
            yield
        finally:
            with self._idle:
                del self._running[stop]
                self._idle.notify_all()
