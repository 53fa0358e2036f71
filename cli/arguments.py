"""What the region commands share: which region folder, and as which member."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from federation.errors import InvalidArgument
from federation.trust.identity import RegionDirectory

DEFAULT_REGION = Path("region")


def add_identity_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--region", type=Path, default=None,
                        help="the region folder `cityfed region init` wrote "
                             f"(default: $CITYFED_REGION or {DEFAULT_REGION})")
    parser.add_argument("--as", dest="member", default=os.environ.get("CITYFED_MEMBER"),
                        help="the member whose credentials to use (default: $CITYFED_MEMBER)")


def open_region(args: argparse.Namespace):
    if not args.member:
        raise InvalidArgument("say which member you are: --as MEMBER or $CITYFED_MEMBER")
    return region_directory(args).open_as(args.member)


def region_directory(args: argparse.Namespace) -> RegionDirectory:
    return RegionDirectory(args.region or Path(os.environ.get("CITYFED_REGION", DEFAULT_REGION)))
