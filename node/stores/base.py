"""What the node asks of a store, whichever engine holds the city's data: the servicers, the
linkage and the backup call these methods and nothing else."""

from __future__ import annotations

from collections.abc import Callable
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
