"""`make demo`: a generated five-city region on loopback, a tour of federated questions, and a
city going down, all in under a minute; every process it starts is stopped at the end.

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
from federation.local_region import start_local_region, write_region
from federation.synthetic import RegionScale
from federation.synthetic.divisions import MEMBER_CITIES
from federation.synthetic.icd10 import chapter_of
from federation.synthetic.networks import HOSPITALS
from federation.values import from_value
from node.cli import main as cityfed

console = Console(highlight=False, width=max(100, Console().width))

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


def ask(title: str, sql: str, region_file: Path, *extra: str) -> None:
    heading(title)
    console.print(f"[dim]$ cityfed query \"{short(sql)}\" {' '.join(extra)}[/]")
    cityfed(["query", sql, "--region", str(region_file), *extra])


def medical_by_chapter(coordinator: Coordinator) -> None:
    heading("Medical spending outside the insuring city, by ICD-10 chapter")
    sql = medical_sql()
    console.print(f"[dim]$ cityfed query \"{short(sql)}\"  (then rolled up by chapter)[/]")
    answer = coordinator.ask_sql(sql, require_all=True)
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
    console.print(f"{len(answer.outcomes)} of {len(answer.outcomes)} cities answered; "
                  "sums are exact decimals, merged from every city's partial sums")


def same_answer_over_grpc(gateway_port: int, sql: str, coordinator: Coordinator) -> None:
    heading("The same question through the FederationService gateway (gRPC)")
    with grpc.insecure_channel(f"127.0.0.1:{gateway_port}") as channel:
        stub = federation_pb2_grpc.FederationServiceStub(channel)
        response = stub.FederatedAggregate(federation_pb2.FederatedAggregateRequest(sql=sql),
                                           timeout=10)
    direct = coordinator.ask_sql(sql)
    over_grpc = [tuple(from_value(v) for v in row.values) for row in response.rows]
    agrees = over_grpc == direct.table.rows and response.complete
    console.print(f"gateway on 127.0.0.1:{gateway_port}: {len(response.rows)} rows, "
                  f"complete={response.complete}, "
                  f"{'identical to' if agrees else 'DIFFERENT from'} the CLI's answer")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("region/demo"))
    parser.add_argument("--people", type=int, default=20_000)
    parser.add_argument("--trips", type=int, default=100_000)
    parser.add_argument("--visits", type=int, default=20_000)
    args = parser.parse_args(argv)
    started = time.perf_counter()

    heading("Generating a seeded five-city region (Beijing–Tianjin–Hebei)")
    scale = RegionScale(people_per_city=args.people, trips_per_city=args.trips,
                        visits_per_city=args.visits)
    write_region(args.dir, scale=scale, base_port=0)
    console.print(f"{args.dir}: one DuckDB file per city; ground truth in "
                  f"{args.dir / 'ground_truth.json'}")

    heading("Starting five city nodes and the federation gateway on loopback")
    with start_local_region(args.dir) as running:
        for member in running.region.members:
            console.print(f"  {member.id:<13} {member.name:<4} {member.endpoint}")
        gateway = start_gateway(running.region, "127.0.0.1:0")
        console.print(f"  gateway       127.0.0.1:{gateway.port}")
        try:
            with Coordinator(running.region) as coordinator:
                ask("Residents by age band, across the cluster", AGE_BANDS, running.region_file,
                    "--require-all")
                ask("Trips on transport cards used outside their issuing city, by hour",
                    commuting_sql(), running.region_file, "--require-all")
                medical_by_chapter(coordinator)
                same_answer_over_grpc(gateway.port, AGE_BANDS, coordinator)

            heading("Langfang's node goes down: the answer says so, it does not hide it")
            running.kill("langfang")
            ask("Residents by age band, four cities answering", AGE_BANDS, running.region_file)
            console.print("[dim]With --require-all the same question fails (exit 3):[/]")
            code = cityfed(["query", AGE_BANDS, "--region", str(running.region_file),
                            "--require-all", "--csv"])
            console.print(f"[dim]exit code {code}[/]")
        finally:
            gateway.stop()
    console.print(f"\n[bold green]Demo finished in {time.perf_counter() - started:.1f} s; "
                  "every node and the gateway are stopped.[/]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
