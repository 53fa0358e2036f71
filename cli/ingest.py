"""`cityfed node ingest`: a load through the running node, or, when no node runs, straight into
the database; on a terminal, with its progress (rows, rate, time left).

Whether a node runs is the database lock's to say (node.database_lock), never whether its
socket file exists: a node killed during a load leaves its socket behind, and a load that then
opened the database itself would hold DuckDB's lock against the node's restart.
"""

from __future__ import annotations

import argparse
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
from cityfed.v1 import admin_pb2, admin_pb2_grpc
from rich import progress as rich_progress
from rich.console import Console

from federation.errors import Cancelled, DatabaseInUse, FileMissing, LoadUnconfirmed
from federation.serving.grpc_errors import error_reason
from node.config import NodeConfig, load_config
from node.database_lock import DatabaseLock
from node.ingest import IngestMode, IngestResult, Load, Phase, Progress
from node.server import INGEST_PHASES, keep_private
from node.stores.duckdb import DuckDBStore

_MODES = {IngestMode.REPLACE: admin_pb2.INGEST_MODE_REPLACE,
          IngestMode.APPEND: admin_pb2.INGEST_MODE_APPEND}
_PHASES = {value: phase for phase, value in INGEST_PHASES.items()}
# The share of a load's time each phase takes, measured on 3M rows of social_insurance: what
# the time left is estimated from.
PHASE_WEIGHTS = {Phase.READING: 0.15, Phase.CHECKING: 0.12, Phase.WRITING: 0.25,
                 Phase.ORDERING: 0.34, Phase.COMMITTING: 0.14}
_DIRECT_POLL_SECONDS = 0.2


def run_ingest(args: argparse.Namespace, out, err) -> int:
    config = load_config(args.config)
    mode = IngestMode.APPEND if args.append else IngestMode.REPLACE
    path = args.file.resolve()
    with LoadDisplay.on(err, args.dataset) as display:
        try:
            lock = DatabaseLock.hold(config.lock_path, "a load without the node "
                                                       "(cityfed node ingest)")
        except DatabaseInUse as in_use:
            result = ingest_through_node(config, args.dataset, path, mode, display, in_use)
            where = " through the running node"
        else:
            with lock:
                result = ingest_directly(config, args.dataset, path, mode, display)
            where = ""
    print(f"loaded {result.rows_loaded} rows into {args.dataset}{where}; it now holds "
          f"{result.row_count}", file=out)
    return 0


def ingest_through_node(config: NodeConfig, dataset: str, path: Path, mode: IngestMode,
                        display: LoadDisplay, in_use: DatabaseInUse) -> IngestResult:
    """The load, run by the node that holds the database. A node that stops answering is
    reported, never worked around."""
    socket = config.admin_socket_path
    request = admin_pb2.IngestRequest(dataset=dataset, path=str(path), mode=_MODES[mode])
    last: Progress | None = None
    result: IngestResult | None = None
    with grpc.insecure_channel(f"unix:{socket}") as channel:
        stub = admin_pb2_grpc.AdminServiceStub(channel)
        try:
            # Read to the stream's end: the node records the load before it ends the call.
            for message in stub.IngestWithProgress(
                    admin_pb2.IngestWithProgressRequest(load=request)):
                if message.HasField("result"):
                    result = IngestResult(message.result.rows_loaded, message.result.row_count)
                else:
                    last = progress_of(message.progress)
                    display.show(last)
        except grpc.RpcError as error:
            if result is not None:
                raise LoadUnconfirmed(
                    f"{result.rows_loaded} rows were loaded, but then the node failed: "
                    f"{error.code().name}: {error.details()}") from None
            if error.code() == grpc.StatusCode.UNIMPLEMENTED and last is None:  # an older node
                response = stub.Ingest(request)
                return IngestResult(response.rows_loaded, response.row_count)
            if error.code() != grpc.StatusCode.UNAVAILABLE or error_reason(error):
                raise  # the node's own answer: a refusal, or a load it rolled back
            if last is None:
                raise DatabaseInUse(
                    f"{in_use}, which does not answer on {socket}: a node starting or "
                    "stopping, or another load. Nothing was loaded; try again once the node "
                    "listens") from None
            raise unconfirmed(f"the node stopped answering while {last.phase.value}") from None
        except KeyboardInterrupt:
            raise unconfirmed("interrupted: the node rolls the load back unless it had begun "
                              "to commit") from None
    if result is None:
        raise unconfirmed("the node ended the call without a result")
    return result


def unconfirmed(what: str) -> LoadUnconfirmed:
    return LoadUnconfirmed(
        f"{what}. A load is one transaction: either all of its rows were stored or none. "
        "Check the dataset's row count once the node is back before loading with --append "
        "again (a replacing load can simply be run again)")


def ingest_directly(config: NodeConfig, dataset: str, path: Path, mode: IngestMode,
                    display: LoadDisplay) -> IngestResult:
    """The load, run here while no node runs (the caller holds the database lock)."""
    if not path.exists():
        raise FileMissing(f"{path}: no such file")
    keep_private(config)
    store = DuckDBStore(config.database, memory_limit=config.memory_limit, threads=config.threads)
    load = Load()
    outcome: list[IngestResult | BaseException] = []

    def run() -> None:
        try:
            outcome.append(store.ingest(dataset, path, mode, load))
        except BaseException as error:  # raised below, in the main thread
            outcome.append(error)

    worker = threading.Thread(target=run, name="ingest")
    try:
        worker.start()
        try:
            while worker.is_alive():
                display.show(load.progress)
                worker.join(_DIRECT_POLL_SECONDS)
        except KeyboardInterrupt:
            load.stop(Cancelled("the load was rolled back, nothing was loaded: interrupted"))
            worker.join()
    finally:
        store.close()
    (result,) = outcome
    if isinstance(result, BaseException):
        raise result
    return result


def progress_of(message: admin_pb2.IngestProgress) -> Progress:
    return Progress(phase=_PHASES.get(message.phase, Phase.READING),
                    rows_done=message.rows_done, rows_total=message.rows_total or None,
                    bytes_done=message.bytes_done, bytes_total=message.bytes_total)


@dataclass(frozen=True)
class Estimate:
    fraction: float  # of the whole load
    rows: int  # the file's rows: counted, or while a CSV file is read, estimated
    rows_known: bool
    rows_per_second: float | None  # the file's rows over the time the whole load will take
    seconds_left: float | None


class LoadEstimator:
    """Turns a load's progress reports into the share done, the rate and the time left. Reading,
    checking and writing count rows (or bytes); ordering and committing are single statements,
    whose share is the time spent in them over what the phases before took, scaled by
    PHASE_WEIGHTS."""

    def __init__(self, started: float) -> None:
        self._started = started
        self._phase: Phase | None = None
        self._phase_started = started

    def estimate(self, progress: Progress, now: float) -> Estimate:
        if progress.phase is not self._phase:
            self._phase, self._phase_started = progress.phase, now
        phases = list(Phase)
        before = sum(PHASE_WEIGHTS[p] for p in phases[:phases.index(progress.phase)])
        share = self._share(progress, now, before)
        fraction = min(1.0, before + PHASE_WEIGHTS[progress.phase] * share)
        rows, known = progress.rows_done, progress.rows_total is not None
        if known:
            rows = progress.rows_total
        elif progress.bytes_done:
            rows = round(progress.rows_done * progress.bytes_total / progress.bytes_done)
        elapsed = now - self._started
        rate = rows * fraction / elapsed if elapsed > 0 and fraction > 0 else None
        left = (elapsed * (1 - fraction) / fraction
                if fraction >= 0.01 and elapsed >= 0.5 else None)
        return Estimate(fraction, rows, known, rate, left)

    def _share(self, progress: Progress, now: float, before: float) -> float:
        """How much of its own phase the load has done, 0 to 1."""
        if progress.phase is Phase.READING:
            if progress.bytes_total:
                return progress.bytes_done / progress.bytes_total
            return progress.rows_done / progress.rows_total if progress.rows_total else 0.0
        if progress.phase in (Phase.CHECKING, Phase.WRITING):
            return progress.rows_done / progress.rows_total if progress.rows_total else 1.0
        spent_before = self._phase_started - self._started
        expected = spent_before * PHASE_WEIGHTS[progress.phase] / before if before else 0.0
        return min(0.95, (now - self._phase_started) / expected) if expected > 0 else 0.0


class LoadDisplay:
    """A progress bar for a load on a terminal, cleared when the load ends; nothing elsewhere."""

    def __init__(self, console: Console | None, dataset: str) -> None:
        self._dataset = dataset
        self._estimator = LoadEstimator(time.monotonic())
        self._bar = None if console is None else rich_progress.Progress(
            rich_progress.TextColumn("{task.description}"), rich_progress.BarColumn(),
            rich_progress.TaskProgressColumn(), rich_progress.TextColumn("{task.fields[detail]}"),
            console=console, transient=True)
        self._task = None

    @classmethod
    def on(cls, stream, dataset: str) -> LoadDisplay:
        console = Console(file=stream, stderr=True)
        return cls(console if console.is_terminal else None, dataset)

    def __enter__(self) -> LoadDisplay:
        if self._bar is not None:
            self._bar.start()
            self._task = self._bar.add_task(self._dataset, total=1.0, detail="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def show(self, progress: Progress) -> None:
        if self._bar is None:
            return
        estimate = self._estimator.estimate(progress, time.monotonic())
        self._bar.update(self._task, completed=estimate.fraction,
                         description=f"{self._dataset}: {progress.phase.value}",
                         detail=describe(estimate))


def describe(estimate: Estimate) -> str:
    """`3,000,000 rows · 310,000 rows/s · 0:07 left`"""
    parts = [f"{'' if estimate.rows_known else '≈ '}{estimate.rows:,} rows"]
    if estimate.rows_per_second is not None:
        parts.append(f"{estimate.rows_per_second:,.0f} rows/s")
    if estimate.seconds_left is not None:
        minutes, seconds = divmod(round(estimate.seconds_left), 60)
        parts.append(f"{minutes}:{seconds:02d} left")
    return " · ".join(parts)
