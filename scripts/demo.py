"""`make demo`: a generated five-city region on loopback, a tour of federated questions, a
refused one, and a city going down, all in under a minute; every process it starts is stopped
at the end. Every call goes over mutual TLS with a signed request token, and every city answers
only what its own policy allows.

Usage: python scripts/demo.py [--dir DIR] [--people N] [--trips N] [--visits N]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import grpc
from cityfed.v1 import federation_pb2, federation_pb2_grpc
from rich.console import Console
from rich.table import Table

from federation.coordinator import Coordinator
from federation.gateway import start_gateway
from federation.identity import channel_options
from federation.local_region import AUTHORITY, start_local_region, write_region
from federation.receipts import Receipt, verify_receipt_signature
from federation.synthetic import RegionScale
from federation.synthetic.divisions import MEMBER_CITIES
from federation.synthetic.icd10 import chapter_of
from federation.synthetic.networks import HOSPITALS
from federation.values import from_value
from node.audit import read_records
from node.cli import main as cityfed

console = Console(highlight=False, width=max(100, Console().width))
RECEIPTS: list[Receipt] = []  # the answers' receipts, checked against the logs at the end

AGE_BANDS = """SELECT date_diff('year', birth_date, DATE '2026-11-26') // 10 * 10 AS age_band,
       count(*) AS residents
FROM population WHERE deceased_on IS NULL
GROUP BY age_band ORDER BY age_band"""


def quoted(values) -> str:
    return ", ".join(f"'{v}'" for v in values)


def used_outside_home(home_column: str, place_column: str, places_of_city: dict) -> str:
    """SQL that is true when a card is used outside the city that issued or insures it.

    Every node holds only taps and visits in its own city, so this is: the place is not one of
    the home city's places. Built from the region's reference data, in plain subset SQL."""
    at_home = " OR ".join(
        f"({home_column} = '{city.code}' AND {place_column} IN ({quoted(places_of_city[city.id])}))"
        for city in MEMBER_CITIES)
    return f"NOT ({at_home})"


def commuting_sql() -> str:
    districts = {city.id: [d.code for d in city.districts] for city in MEMBER_CITIES}
    return ("SELECT hour(tapped_at) AS hour, count(*) AS trips, sum(fare) AS fares "
            f"FROM transit_trips WHERE {used_outside_home('card_city', 'district_code', districts)}"
            " GROUP BY hour ORDER BY hour")


def medical_sql() -> str:
    hospitals = {city.id: [h.code for h in HOSPITALS[city.id]] for city in MEMBER_CITIES}
    return ("SELECT icd10, count(*) AS visits, sum(total_cost) AS cost, "
            "sum(insurance_paid) AS insured FROM medical_visits "
            f"WHERE {used_outside_home('card_city', 'hospital_id', hospitals)} GROUP BY icd10")


def short(sql: str, limit: int = 160) -> str:
    flat = " ".join(sql.split())
    return flat if len(flat) <= limit else flat[:limit] + " …"


def heading(text: str) -> None:
    console.print(f"\n[bold cyan]── {text}[/]")


def ask(title: str, sql: str, region: Path, purpose: str, *extra: str) -> int:
    heading(title)
    console.print(f"[dim]$ cityfed query \"{short(sql)}\" --as {AUTHORITY} --purpose {purpose}"
                  f" {' '.join(extra)}[/]")
    return cityfed(["query", sql, "--region", str(region), "--as", AUTHORITY,
                    "--purpose", purpose, *extra])


def medical_by_chapter(coordinator: Coordinator) -> None:
    heading("Medical spending outside the insuring city, by ICD-10 chapter")
    sql = medical_sql()
    console.print(f"[dim]$ cityfed query \"{short(sql)}\" --purpose medical-settlement-statistics"
                  "  (then rolled up by chapter)[/]")
    answer = coordinator.ask_sql(sql, purpose="medical-settlement-statistics", require_all=True)
    RECEIPTS.extend(o.receipt for o in answer.outcomes if o.receipt)
    totals: dict = defaultdict(lambda: [0, Decimal(0), Decimal(0)])
    for icd10, visits, cost, insured in answer.table.rows:
        chapter = chapter_of(icd10)
        entry = totals[(chapter.numeral, chapter.range, chapter.title)]
        entry[0] += visits
        entry[1] += cost
        entry[2] += insured
    table = Table(show_edge=False, header_style="bold")
    table.add_column("chapter")
    table.add_column("codes")
    table.add_column("title", max_width=34, no_wrap=True, overflow="ellipsis")
    for column in ("visits", "cost (CNY)", "insurance paid"):
        table.add_column(column, justify="right")
    for (numeral, codes, title), (visits, cost, insured) in sorted(
            totals.items(), key=lambda item: -item[1][1]):
        table.add_row(numeral, codes, title, str(visits), f"{cost:,}", f"{insured:,}")
    console.print(table)
    withheld = sum(o.suppressed_groups for o in answer.outcomes)
    console.print(f"{len(answer.outcomes)} of {len(answer.outcomes)} cities answered; sums are "
                  f"exact decimals merged from every city's partial sums; {withheld} diagnosis "
                  "groups of fewer than 10 people were withheld at home")


def refused_question(region: Path) -> None:
    sql = "SELECT name, count(*) AS people FROM population GROUP BY name"
    ask("A question the cities refuse: counting residents by name", sql, region,
        "population-statistics")
    console.print(f"[dim]$ cityfed policy explain --policy beijing.policy.toml --caller "
                  f"{AUTHORITY} --role authority --groups authorities "
                  f"--purpose population-statistics \"{sql}\"[/]")
    cityfed(["policy", "explain", "--policy", str(region / "beijing.policy.toml"),
             "--caller", AUTHORITY, "--role", "authority", "--groups", "authorities",
             "--purpose", "population-statistics", sql])


def same_answer_over_grpc(gateway_port: int, sql: str, coordinator: Coordinator) -> None:
    heading("The same question through the FederationService gateway (gRPC, mutual TLS)")
    identity, manifest = coordinator.identity, coordinator.manifest
    with grpc.secure_channel(f"127.0.0.1:{gateway_port}", identity.channel_credentials(),
                             options=channel_options(identity.member_id,
                                                     manifest.region)) as channel:
        stub = federation_pb2_grpc.FederationServiceStub(channel)
        response = stub.FederatedAggregate(federation_pb2.FederatedAggregateRequest(
            sql=sql, purpose="population-statistics"), timeout=10)
    direct = coordinator.ask_sql(sql, purpose="population-statistics")
    RECEIPTS.extend(o.receipt for o in direct.outcomes if o.receipt)
    over_grpc = [tuple(from_value(v) for v in row.values) for row in response.rows]
    agrees = over_grpc == direct.table.rows and response.complete
    console.print(f"gateway on 127.0.0.1:{gateway_port}: {len(response.rows)} rows, "
                  f"complete={response.complete}, "
                  f"{'identical to' if agrees else 'DIFFERENT from'} the CLI's answer")


def verify_logs_and_receipts(region: Path, cities: tuple[str, ...], manifest) -> None:
    heading("Every city's audit log, verified; every receipt, checked against its log")
    for city in cities:
        console.print(f"[dim]$ cityfed audit verify {city}.state/audit --city {city}[/]")
        cityfed(["audit", "verify", str(region / f"{city}.state" / "audit"), "--manifest",
                 str(region / "manifest.json"), "--root-public-key",
                 str(region / "root" / "root.pub"), "--city", city])
    matched = 0
    for receipt in RECEIPTS:
        verify_receipt_signature(receipt, manifest)
        record = list(read_records(region / f"{receipt.city}.state" / "audit"))[
            receipt.audit_index]
        matched += (record["jti"], record["response_sha256"]) == (receipt.jti,
                                                                  receipt.response_sha256)
    console.print(f"{matched} of {len(RECEIPTS)} receipts are signed by their city and match the "
                  "record their index names (Langfang's log too: it was killed, not stopped)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("region/demo"))
    parser.add_argument("--people", type=int, default=20_000)
    parser.add_argument("--trips", type=int, default=100_000)
    parser.add_argument("--visits", type=int, default=20_000)
    args = parser.parse_args(argv)
    started = time.perf_counter()

    heading("Generating a seeded five-city region (Beijing–Tianjin–Hebei) with its trust")
    scale = RegionScale(people_per_city=args.people, trips_per_city=args.trips,
                        visits_per_city=args.visits)
    trusted = write_region(args.dir, scale=scale)
    console.print(f"{args.dir}: a root key and CA, a TLS certificate and signing key per member, "
                  "a signed manifest, one DuckDB file, policy and node config per city")

    heading("Starting five city nodes (mutual TLS only) and the authority's gateway")
    cities = tuple(trusted.endpoints)
    with start_local_region(args.dir, cities) as running:
        for city in cities:
            console.print(f"  {city:<13} {running.addresses[city]}")
        manifest, identity = trusted.directory.open_as(AUTHORITY)
        gateway = start_gateway(manifest, identity, "127.0.0.1:0")
        console.print(f"  gateway       127.0.0.1:{gateway.port} (serves {AUTHORITY})")
        try:
            with Coordinator(manifest, identity) as coordinator:
                ask("Residents by age band, across the cluster", AGE_BANDS, args.dir,
                    "population-statistics", "--require-all")
                ask("Trips on transport cards used outside their issuing city, by hour",
                    commuting_sql(), args.dir, "transit-planning", "--require-all")
                medical_by_chapter(coordinator)
                refused_question(args.dir)
                same_answer_over_grpc(gateway.port, AGE_BANDS, coordinator)

            heading("Langfang's node goes down: the answer says so, it does not hide it")
            running.kill("langfang")
            ask("Residents by age band, four cities answering", AGE_BANDS, args.dir,
                "population-statistics")
            console.print("[dim]With --require-all the same question fails (exit 3):[/]")
            code = ask("Residents by age band, all cities required", AGE_BANDS, args.dir,
                       "population-statistics", "--require-all")
            console.print(f"[dim]exit code {code}[/]")
        finally:
            gateway.stop()
    verify_logs_and_receipts(args.dir, cities, manifest)
    console.print(f"\n[bold green]Demo finished in {time.perf_counter() - started:.1f} s; "
                  "every node and the gateway are stopped.[/]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
