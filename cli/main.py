"""The `cityfed` command: every command group, each from its module in this package."""

from __future__ import annotations

import argparse
import logging
import sys

import grpc

from cli import (
    audit,
    console,
    datasets,
    gateway,
    match,
    node,
    policy,
    query,
    receipt,
    region,
    trust,
)
from cli.exits import report_error
from federation.errors import CityfedError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cityfed", description="A federation of city nodes: data stays home, answers travel.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log to stderr")
    commands = parser.add_subparsers(dest="command", required=True)
    node.add_commands(commands)
    policy.add_commands(commands)
    audit.add_commands(commands)
    query.add_commands(commands)
    region.add_commands(commands)
    trust.add_commands(commands)
    receipt.add_commands(commands)
    datasets.add_commands(commands)
    gateway.add_commands(commands)
    match.add_commands(commands)
    console.add_commands(commands)
    return parser


def main(argv: list[str] | None = None, out=None, err=None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=err)
    try:
        return args.run(args, out, err)
    except (CityfedError, grpc.RpcError) as error:
        return report_error(error, err)
