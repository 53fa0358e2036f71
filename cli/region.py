"""`cityfed region init` and `cityfed region generate`: a region's trust material, or a whole
seeded region to try cityfed on."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

from cli.trust import add_region_init
from federation.errors import InvalidArgument


def add_commands(commands: argparse._SubParsersAction) -> None:
    region = commands.add_parser("region", help="create regions").add_subparsers(
        dest="region_command", required=True)
    add_region_init(region)
    generate = region.add_parser(
        "generate", help="write a whole seeded five-city region: trust, data, policies, configs")
    generate.add_argument("directory", type=Path)
    generate.add_argument("--people", type=int, default=20_000, help="residents per city")
    generate.add_argument("--trips", type=int, default=100_000, help="transit taps per city")
    generate.add_argument("--visits", type=int, default=20_000, help="medical visits per city")
    generate.add_argument("--seed", type=int, default=7)
    generate.add_argument("--force", action="store_true",
                          help="replace a region (and its keys) already in the folder")
    generate.set_defaults(run=run_generate)


def run_generate(args: argparse.Namespace, out: io.TextIOBase, err: io.TextIOBase) -> int:
    from federation.synthetic import RegionScale
    from federation.synthetic.local_region import write_region

    if (args.directory / "root" / "root.key").exists() and not args.force:
        raise InvalidArgument(f"{args.directory} already holds a region; --force replaces it "
                              "and its keys")
    scale = RegionScale(people_per_city=args.people, trips_per_city=args.trips,
                        visits_per_city=args.visits)
    trusted = write_region(args.directory, scale=scale, seed=args.seed)
    print(f"wrote region {args.directory}: manifest, keys and certificates, and for each city "
          "a store, a policy and a node config:", file=out)
    for city, endpoint in trusted.endpoints.items():
        print(f"  cityfed node serve --config {args.directory / city}.toml   # {endpoint}",
              file=out)
    return 0
