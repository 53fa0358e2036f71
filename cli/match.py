"""`cityfed match`: run a standard fraud check between two cities, or between every ordered
pair, and say what each party learned."""

from __future__ import annotations

import argparse
import io
import itertools
import json

from cli.arguments import add_identity_arguments, open_region
from federation.coordination.coordinator import CityStatus, Coordinator
from federation.linkage.asker import DEFAULT_LINKAGE_TIMEOUT, LinkageOutcome, run_linkage
from federation.linkage.checks import CHECKS, build_plan
from federation.linkage.plan import MODE_NAMES, mode_name
from federation.linkage.reports import outcome_to_json, what_each_learned

EXIT_INCOMPLETE = 3


def add_commands(commands: argparse._SubParsersAction) -> None:
    match = commands.add_parser(
        "match", help="run a fraud check between cities by private set intersection",
        description="Compare two cities' registries without either seeing the other's "
                    "identifiers (docs/linkage.md). Checks: " + "; ".join(
                        f"{c.name}: {c.summary}" for c in CHECKS.values()))
    match.add_argument("check", choices=sorted(CHECKS))
    pair = match.add_mutually_exclusive_group(required=True)
    pair.add_argument("--owner", help="the city whose records are counted or revealed")
    pair.add_argument("--all-pairs", action="store_true",
                      help="every ordered pair of cities (with reveal-to-owner: every pair "
                           "whose owner is the asking member)")
    match.add_argument("--partner", help="the city they are compared with")
    match.add_argument("--mode", choices=sorted(MODE_NAMES), default="count",
                       help="count (default): how many match, noised where a city's policy is "
                            "below row; reveal-to-owner: the owner's matched records, asked by "
                            "the owner city itself")
    match.add_argument("--purpose", help="the registered purpose (default: the check's)")
    match.add_argument("--timeout", type=float, default=DEFAULT_LINKAGE_TIMEOUT,
                       help="seconds the whole linkage may take")
    match.add_argument("--json", action="store_true", help="print the outcomes as JSON")
    add_identity_arguments(match)
    match.set_defaults(run=run_match)


def run_match(args: argparse.Namespace, out: io.TextIOBase, err: io.TextIOBase) -> int:
    manifest, identity = open_region(args)
    check = CHECKS[args.check]
    purpose = args.purpose or check.purpose
    cities = [m.id for m in manifest.cities]
    if args.all_pairs:
        pairs = [(a, b) for a, b in itertools.permutations(cities, 2)
                 if args.mode != "reveal-to-owner" or a == identity.member_id]
    else:
        if not args.partner:
            raise SystemExit("cityfed match: --partner is needed with --owner")
        pairs = [(args.owner, args.partner)]
    outcomes = []
    with Coordinator(manifest, identity) as coordinator:
        for owner, partner in pairs:
            plan = build_plan(check.name, owner=owner, partner=partner, mode=args.mode)
            outcome = run_linkage(coordinator, plan, purpose=purpose, timeout=args.timeout)
            outcomes.append(outcome)
            if not args.json:
                print_outcome(outcome, identity.member_id, out)
    if args.json:
        out.write(json.dumps([outcome_to_json(o) for o in outcomes], ensure_ascii=False,
                             indent=2) + "\n")
    return 0 if all(o.complete for o in outcomes) else EXIT_INCOMPLETE


def print_outcome(outcome: LinkageOutcome, asker: str, out: io.TextIOBase) -> None:
    plan, result = outcome.plan, outcome.result
    title = (f"{plan.check}: owner {plan.owner.city} × partner {plan.partner.city} "
             f"({mode_name(plan.mode)}, {outcome.elapsed_seconds:.1f} s)")
    if result is None:
        print(f"{title}: no answer", file=out)
        for city in outcome.outcomes:
            if city.status is not CityStatus.ANSWERED:
                print(f"  {city.city}: {city.status.value}: {city.detail}", file=out)
        return
    if result.exact:
        found = f"{result.count} match" + ("" if result.count == 1 else "es")
    else:
        found = (f"about {result.count} matches (± {result.count_half_width_95:.0f} at 95%, "
                 "differentially private)")
    print(f"{title}: {found}", file=out)
    for key in result.matched_keys:
        print(f"  {key}", file=out)
    for line in what_each_learned(outcome, asker):
        print(f"  - {line}", file=out)
