"""`cityfed node …`: serve a city's node, check its setup, load data into it, make it read its
manifest again, and back it up or restore it."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import grpc
from cityfed.v1 import admin_pb2, admin_pb2_grpc

from cli import backup as backup_cli
from cli.ingest import run_ingest
from federation.errors import FileMissing
from federation.serving.signals import reload_on_hangup, stop_on_signal
from node.config import load_config
from node.doctor import cannot_start, diagnose, report
from node.server import start_node


def add_commands(commands: argparse._SubParsersAction) -> None:
    node = commands.add_parser("node", help="run and load one city's node").add_subparsers(
        dest="node_command", required=True)
    serve = node.add_parser("serve", help="serve the city's data to the region")
    serve.add_argument("--config", type=Path, required=True, help="the node's TOML config")
    serve.add_argument("--listen", help="override the config's listen address (port 0: any)")
    serve.set_defaults(run=run_serve)

    doctor = node.add_parser("doctor", help="check a node's setup and say what to fix")
    doctor.add_argument("--config", type=Path, required=True, help="the node's TOML config")
    doctor.add_argument("--no-peers", action="store_true",
                        help="skip the health check of every city the manifest lists")
    doctor.add_argument("--timeout", type=float, default=3.0,
                        help="seconds each city may take to answer its health check")
    doctor.set_defaults(run=run_doctor)

    ingest = node.add_parser("ingest", help="load a CSV or Parquet file into a dataset")
    ingest.add_argument("file", type=Path)
    ingest.add_argument("--config", type=Path, required=True)
    ingest.add_argument("--dataset", required=True)
    ingest.add_argument("--append", action="store_true",
                        help="add the rows instead of replacing the dataset's rows")
    ingest.set_defaults(run=run_ingest)

    reload = node.add_parser(
        "reload-manifest", help="make the running node read its manifest file again now")
    reload.add_argument("--config", type=Path, required=True)
    reload.set_defaults(run=run_reload_manifest)

    backup_cli.add_commands(node)


def run_doctor(args: argparse.Namespace, out, err) -> int:
    return report(diagnose(args.config, peers=not args.no_peers, timeout=args.timeout), out)


def run_serve(args: argparse.Namespace, out, err) -> int:
    config = load_config(args.config)
    if args.listen:
        config = dataclasses.replace(config, listen=args.listen)
    stop = stop_on_signal()
    reloads = reload_on_hangup()
    try:
        running = start_node(config)
    except OSError as error:  # a full disk, a folder it may not write: one line, no traceback
        raise cannot_start(config, error) from None
    reloads.append(running.manifest_watcher.check_now)
    print(f"{config.city} listening on {running.address}", file=out, flush=True)
    stop.wait()
    running.stop(grace=config.shutdown_grace_seconds, hurry=stop.hurried)
    return 0


def run_reload_manifest(args: argparse.Namespace, out, err) -> int:
    config = load_config(args.config)
    socket = config.admin_socket_path
    if not socket.exists():
        raise FileMissing(f"{socket}: no admin socket; is the node running?")
    with grpc.insecure_channel(f"unix:{socket}") as channel:
        response = admin_pb2_grpc.AdminServiceStub(channel).ReloadManifest(
            admin_pb2.ReloadManifestRequest(), timeout=30)
    changed = ("now in force" if response.version != response.previous_version
               else "still in force (no newer manifest in the file)")
    print(f"manifest version {response.version} {changed}; was {response.previous_version}, "
          f"expires {response.expires_at}", file=out)
    return 0
