"""`cityfed query` and `cityfed budget`: one question to every city, and what is left of the
privacy budget; the answer as a table, CSV or strict JSON."""

from __future__ import annotations

import argparse
import io
import json
import math
from typing import Any

import grpc
from cityfed.v1 import federation_pb2, federation_pb2_grpc
from rich.console import Console
from rich.table import Table as RichTable

from cli.arguments import add_identity_arguments, open_region
from cli.exits import EXIT_INCOMPLETE
from federation.coordination.answers import answer_to_json, budget_rows, json_value, write_csv
from federation.coordination.coordinator import (
    CityOutcome,
    CityStatus,
    Coordinator,
    FederatedAnswer,
)
from federation.errors import InvalidArgument
from federation.privacy.accuracy import ColumnAccuracy
from federation.query.finish import Table
from federation.query.values import from_value
from federation.trust.identity import channel_options
from federation.trust.receipts import Receipt

_STATUS_NAMES = {f"CITY_STATUS_{s.name}": s for s in CityStatus}


def add_commands(commands: argparse._SubParsersAction) -> None:
    query = commands.add_parser("query", help="ask every city one aggregate question in SQL")
    query.add_argument("sql", help="a SELECT in cityfed's SQL subset (see README)")
    add_identity_arguments(query)
    query.add_argument("--purpose", required=True,
                       help="why you ask: a purpose the region's manifest registers")
    query.add_argument("--gateway", help="ask a federation gateway at HOST:PORT instead")
    query.add_argument("--gateway-member",
                       help="the member whose gateway it is (default: the --as member)")
    query.add_argument("--cities", default="", help="comma-separated member ids (default: all)")
    query.add_argument("--timeout", type=float, default=10.0, help="seconds each city may take")
    query.add_argument("--require-all", action="store_true",
                       help="fail (exit 3) unless every city answers")
    output = query.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print the answer as JSON")
    output.add_argument("--csv", action="store_true", help="print the rows as CSV")
    query.set_defaults(run=run_query)

    budget = commands.add_parser(
        "budget", help="what is left of your privacy budget at every city, for a purpose")
    add_identity_arguments(budget)
    budget.add_argument("--purpose", required=True, help="the purpose the budget is for")
    budget.add_argument("--cities", default="", help="comma-separated member ids (default: all)")
    budget.add_argument("--timeout", type=float, default=10.0, help="seconds each city may take")
    budget.add_argument("--json", action="store_true", help="print the budgets as JSON")
    budget.set_defaults(run=run_budget)


def run_query(args: argparse.Namespace, out: io.TextIOBase, err: io.TextIOBase) -> int:
    cities = tuple(c.strip() for c in args.cities.split(",") if c.strip())
    manifest, identity = open_region(args)
    if args.gateway:
        answer = _ask_gateway(args, cities, manifest, identity)
    else:
        with Coordinator(manifest, identity) as coordinator:
            answer = coordinator.ask_sql(args.sql, purpose=args.purpose, cities=cities,
                                         require_all=args.require_all, timeout=args.timeout)
    if args.json:
        out.write(json.dumps(answer_to_json(answer), ensure_ascii=False, indent=2,
                             allow_nan=False) + "\n")
    elif args.csv:
        write_csv(answer.table, out)
        print_outcomes(answer.outcomes, err)
    else:
        print_table(answer, out)
    if answer.outcomes and not any(o.status is CityStatus.ANSWERED for o in answer.outcomes):
        print("error: no city answered", file=err)
        return EXIT_INCOMPLETE
    return 0


def run_budget(args: argparse.Namespace, out: io.TextIOBase, err: io.TextIOBase) -> int:
    cities = tuple(c.strip() for c in args.cities.split(",") if c.strip())
    manifest, identity = open_region(args)
    if manifest.purpose(args.purpose) is None:
        raise InvalidArgument(f"purpose {args.purpose[:64]!r} is not registered in the manifest")
    with Coordinator(manifest, identity) as coordinator:
        found = coordinator.catalogs(args.purpose, cities, timeout=args.timeout)
    rows = budget_rows(found)
    if args.json:
        out.write(json.dumps(rows, indent=2) + "\n")
    else:
        print(f"privacy budget of {identity.member_id} for purpose {args.purpose!r}:", file=out)
        for row in rows:
            if "error" in row:
                print(f"  {row['city']:<14} {row['error']}", file=out)
                continue
            print(f"  {row['city']:<14} ε {row['epsilon_left']:g} of {row['epsilon_limit']:g} "
                  f"left in {row['period']} (ε {row['epsilon_per_question']:g} a question; "
                  f"resets {row['resets_at']})", file=out)
    return 0 if all("error" not in row for row in rows) else EXIT_INCOMPLETE


def _ask_gateway(args: argparse.Namespace, cities: tuple[str, ...], manifest,
                 identity) -> FederatedAnswer:
    request = federation_pb2.FederatedAggregateRequest(
        sql=args.sql, cities=cities, require_all=args.require_all, purpose=args.purpose,
        city_timeout_ms=int(args.timeout * 1000))
    gateway_member = args.gateway_member or identity.member_id
    with grpc.secure_channel(args.gateway, identity.channel_credentials(),
                             options=channel_options(gateway_member, manifest.region)) as channel:
        stub = federation_pb2_grpc.FederationServiceStub(channel)
        response = stub.FederatedAggregate(request, timeout=args.timeout + 5)
    return FederatedAnswer(
        Table(list(response.column_names),
              [tuple(from_value(v) for v in row.values) for row in response.rows]),
        [CityOutcome(o.city, _STATUS_NAMES[federation_pb2.CityStatus.Name(o.status)], o.code,
                     o.detail, o.groups, o.elapsed_ms,
                     Receipt.from_json(o.receipt) if o.receipt else None, o.private,
                     o.epsilon_charged, o.epsilon_remaining, response=o.response)
         for o in response.outcomes],
        [ColumnAccuracy(a.noisy, a.noise_stddev, list(a.half_widths_95))
         for a in response.accuracy],
        response.query if response.HasField("query") else None, response.plan,
        tuple(response.column_types),
    )


def _display(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return f"{value:,.4f}".rstrip("0").rstrip(".")
    return str(json_value(value))


def print_table(answer: FederatedAnswer, out: io.TextIOBase) -> None:
    console = Console(file=out, width=max(100, Console().width), highlight=False)
    table = RichTable(show_edge=False, header_style="bold")
    for name in answer.table.column_names:
        table.add_column(name, overflow="fold")
    accuracy = answer.accuracy or [ColumnAccuracy() for _ in answer.table.column_names]
    for number, row in enumerate(answer.table.rows):
        table.add_row(*(_display(v) + _plus_minus(a, number) for v, a in zip(row, accuracy,
                                                                             strict=True)))
    console.print(table)
    if answer.private:
        print("private answer: values are noisy (± the half-width of a 95% interval for the "
              "noise; withheld groups are not counted)", file=out)
        scales = [f"{name} {_display(round(a.noise_stddev, 4))}"
                  for name, a in zip(answer.table.column_names, accuracy, strict=True)
                  if a.noisy and a.noise_stddev]
        if scales:
            print(f"noise standard deviation: {', '.join(scales)}", file=out)
    print_outcomes(answer.outcomes, out)


def _plus_minus(accuracy: ColumnAccuracy, row: int) -> str:
    if not accuracy.noisy:
        return ""
    if row >= len(accuracy.half_widths):
        return " ±?"
    width = accuracy.half_widths[row]
    return " ±∞" if not math.isfinite(width) else f" ±{_display(round(width, 4))}"


def print_outcomes(outcomes: list[CityOutcome], out) -> None:
    answered = sum(o.status is CityStatus.ANSWERED for o in outcomes)
    print(f"{answered} of {len(outcomes)} cities answered", file=out)
    for o in outcomes:
        if o.status is CityStatus.ANSWERED:
            spent = (f", ε {o.epsilon_charged:g} charged, ε {o.epsilon_remaining:g} left"
                     if o.private else ", exact")
            print(f"  {o.city:<14} answered   {o.groups} groups{spent}, {o.elapsed_ms:.1f} ms",
                  file=out)
        else:
            print(f"  {o.city:<14} {o.status.value.upper():<10} {o.code}: {o.detail}", file=out)
