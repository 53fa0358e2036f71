"""`cityfed node ingest`: a load through the running node, or, when no node runs, straight into
the database.

Whether a node runs is the database lock's to say (node.database_lock), never whether its
socket file exists: a node killed during a load leaves its socket behind, and a load that then
opened the database itself would hold DuckDB's lock against the node's restart.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import grpc
from cityfed.v1 import admin_pb2, admin_pb2_grpc

from federation.errors import DatabaseInUse, FileMissing, LoadUnconfirmed
from federation.grpc_errors import error_reason
from node.config import NodeConfig, load_config
from node.database_lock import DatabaseLock
from node.ingest import IngestMode, IngestResult
from node.server import keep_private
from node.store import Store

_MODES = {IngestMode.REPLACE: admin_pb2.INGEST_MODE_REPLACE,
          IngestMode.APPEND: admin_pb2.INGEST_MODE_APPEND}


def run_ingest(args: argparse.Namespace, out, err) -> int:
    config = load_config(args.config)
    mode = IngestMode.APPEND if args.append else IngestMode.REPLACE
    path = args.file.resolve()
    try:
        lock = DatabaseLock.hold(config.lock_path, "a load without the node "
                                                   "(cityfed node ingest)")
    except DatabaseInUse as in_use:
        result = ingest_through_node(config, args.dataset, path, mode, in_use)
        where = " through the running node"
    else:
        with lock:
            result = ingest_directly(config, args.dataset, path, mode)
        where = ""
    print(f"loaded {result.rows_loaded} rows into {args.dataset}{where}; it now holds "
          f"{result.row_count}", file=out)
    return 0


def ingest_through_node(config: NodeConfig, dataset: str, path: Path, mode: IngestMode,
                        in_use: DatabaseInUse) -> IngestResult:
    """The load, run by the node that holds the database. A node that stops answering is
    reported, never worked around."""
    socket = config.admin_socket_path
    request = admin_pb2.IngestRequest(dataset=dataset, path=str(path), mode=_MODES[mode])
    with grpc.insecure_channel(f"unix:{socket}") as channel:
        try:
            response = admin_pb2_grpc.AdminServiceStub(channel).Ingest(request)
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE or error_reason(error):
                raise  # the node's own answer: a refusal, or a load it rolled back
            if "failed to connect" in (error.details() or ""):
                raise DatabaseInUse(
                    f"{in_use}, which does not answer on {socket}: a node starting or "
                    "stopping, or another load. Nothing was loaded; try again once the node "
                    "listens") from None
            raise unconfirmed("the node stopped answering during the load") from None
        except KeyboardInterrupt:
            raise unconfirmed("interrupted: the node rolls the load back unless it had begun "
                              "to commit") from None
    return IngestResult(response.rows_loaded, response.row_count)


def unconfirmed(what: str) -> LoadUnconfirmed:
    return LoadUnconfirmed(
        f"{what}. A load is one transaction: either all of its rows were stored or none. "
        "Check the dataset's row count once the node is back before loading with --append "
        "again (a replacing load can simply be run again)")


def ingest_directly(config: NodeConfig, dataset: str, path: Path,
                    mode: IngestMode) -> IngestResult:
    """The load, run here while no node runs (the caller holds the database lock)."""
    if not path.exists():
        raise FileMissing(f"{path}: no such file")
    keep_private(config)
    store = Store(config.database, memory_limit=config.memory_limit, threads=config.threads)
    try:
        return store.ingest(dataset, path, mode)
    finally:
        store.close()
