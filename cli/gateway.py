"""`cityfed gateway serve`: FederationService for the members a gateway serves."""

from __future__ import annotations

import argparse
import io

from cli.arguments import add_identity_arguments, open_region, region_directory
from federation.serving.signals import reload_on_hangup, stop_on_signal


def add_commands(commands: argparse._SubParsersAction) -> None:
    gateway = commands.add_parser("gateway", help="run the federation gateway").add_subparsers(
        dest="gateway_command", required=True)
    serve = gateway.add_parser("serve", help="serve FederationService for a region")
    add_identity_arguments(serve)
    serve.add_argument("--listen", default="127.0.0.1:7400")
    serve.add_argument("--serve", default="",
                       help="comma-separated members it answers (default: only the --as member)")
    serve.add_argument("--timeout", type=float, default=10.0, help="default seconds per city")
    serve.add_argument("--metrics-listen", default="",
                       help="HOST:PORT of its Prometheus metrics, like 127.0.0.1:9465 (default: "
                            "none)")
    # It takes a newer manifest.json of the region folder by itself (and at once on SIGHUP).
    serve.set_defaults(run=run_gateway)


def run_gateway(args: argparse.Namespace, out: io.TextIOBase, err: io.TextIOBase) -> int:
    from federation.services.gateway import start_gateway

    manifest, identity = open_region(args)
    serves = frozenset(m.strip() for m in args.serve.split(",") if m.strip()) or None
    stop = stop_on_signal()
    reloads = reload_on_hangup()
    gateway = start_gateway(manifest, identity, args.listen, serves=serves,
                            city_timeout=args.timeout, region=region_directory(args),
                            metrics_listen=args.metrics_listen)
    reloads.append(gateway.manifest_watcher.check_now)
    host = args.listen.rsplit(":", 1)[0]
    print(f"gateway listening on {host}:{gateway.port}", file=out, flush=True)
    stop.wait()
    gateway.stop()
    return 0
