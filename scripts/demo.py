"""`make demo`: a generated five-city region on loopback, a tour of federated questions, a
refused one, a privacy budget being spent until the cities refuse, and a city going down, in
about a minute (two with Beijing on Spark); every process it starts is stopped at the end. When
Java 17 and pyspark are installed, Beijing's node answers from a local Spark over its datasets
written as Parquet (a city's own data platform), the others from DuckDB. Every call goes over
mutual TLS with a signed request token, and every city answers only what its own policy allows: the
regional authority gets differentially private statistics (noisy, with ± intervals, each answer
charged to its privacy budget), never exact counts of small groups.

Usage: python scripts/demo.py [--dir DIR] [--people N] [--trips N] [--visits N]
                             [--spark auto|yes|no]
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import grpc
from cityfed.v1 import federation_pb2, federation_pb2_grpc, node_pb2, node_pb2_grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from rich.console import Console
from rich.table import Table

from cli.main import main as cityfed
from federation.coordination.coordinator import CityStatus, Coordinator
from federation.privacy.noise import half_width
from federation.query.sql import parse_query
from federation.query.values import from_value
from federation.services.gateway import start_gateway
from federation.synthetic import RegionScale
from federation.synthetic.divisions import MEMBER_CITIES
from federation.synthetic.icd10 import chapter_of
from federation.synthetic.local_region import (
    AUTHORITY,
    SPARK_MASTER,
    serve_from_spark,
    spark_missing,
    start_local_region,
    store_of,
    write_region,
)
from federation.synthetic.networks import HOSPITALS
from federation.trust.identity import channel_options
from federation.trust.receipts import Receipt, verify_receipt_signature
from federation.trust.tokens import mint_token
from node.audit import read_records

console = Console(highlight=False, width=max(100, Console().width))
RECEIPTS: list[Receipt] = []  # the answers' receipts, checked against the logs at the end

AGE_BANDS = """SELECT date_diff('year', birth_date, DATE '2026-11-26') // 10 * 10 AS age_band,
       count(*) AS residents
FROM population WHERE deceased_on IS NULL
GROUP BY age_band ORDER BY age_band"""
# The question asked until the transit-planning budget is spent: trips and fares by mode.
BY_MODE = "SELECT mode, count(*) AS trips, sum(fare) AS fares FROM transit_trips GROUP BY mode"
TRANSIT = "transit-planning"
# The city served from Spark when this machine can run one: the largest, as in a real region.
SPARK_CITY = "beijing"


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
    charged = ", ".join(f"{o.city} ε {o.epsilon_charged:g} ({o.epsilon_remaining:g} left)"
                        for o in answer.outcomes)
    console.print(f"{len(answer.outcomes)} of {len(answer.outcomes)} cities answered, each "
                  f"charging: {charged}. Each city released only the diagnoses whose noisy "
                  "count passed its threshold (how many it held back is not said), so the "
                  "chapter totals are sums of noisy per-city, per-diagnosis values.")
    report = next(o.privacy for o in answer.outcomes if o.privacy is not None)
    count, cost = report.aggregates[0], report.aggregates[1]
    visits_width, cost_width = half_width([count.count_scale]), half_width([cost.sum_scale])
    console.print(
        f"Noise in each city's value for one diagnosis: visits ±{visits_width:,.0f}, cost and "
        f"insurance ±{cost_width:,.0f} CNY (95%). A person adds at "
        f"most {report.max_rows_per_person} visits, each clamped to {cost.lower_bound}–"
        f"{cost.upper_bound} CNY, and ε {report.epsilon:g} is split over three statistics: "
        "costs are hidden far better than counts, which is why a sum can even come out negative.")


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
    same_groups = [r[0] for r in over_grpc] == [r[0] for r in direct.table.rows]
    widths = list(response.accuracy[1].half_widths_95) if len(response.accuracy) > 1 else []
    console.print(f"gateway on 127.0.0.1:{gateway_port}: {len(response.rows)} rows, "
                  f"complete={response.complete}, "
                  f"{'the same age bands as' if same_groups else 'other age bands than'} a "
                  "direct answer asked beside it. Each answer is noised afresh, so their counts "
                  "differ; the gateway's carries its ± too (e.g. "
                  + ", ".join(f"{row[0]}: {row[1]} ±{width:g}"
                              for row, width in list(zip(over_grpc, widths, strict=False))[:3])
                  + ", …)")


def budget_spent(region: Path, coordinator: Coordinator, cities: tuple[str, ...]) -> None:
    heading("Asked again, the same question is charged again: the budget is spent")
    console.print(f"[dim]Each city lets {AUTHORITY} spend ε 10 a day on {TRANSIT}, ε 1 per "
                  "question (\\[privacy] in its policy). Asking again gives a new noisy answer "
                  "and charges again; averaging many answers would cost many ε.[/]")
    ask("Trips on transport cards used outside their issuing city, by hour (again)",
        commuting_sql(), region, TRANSIT, "--require-all")

    heading(f"Until the {TRANSIT} budget runs out")
    console.print(f"[dim]$ cityfed query \"{BY_MODE}\" --as {AUTHORITY} --purpose {TRANSIT}"
                  "   (asked again and again)[/]")
    for number in range(1, 20):
        answer = coordinator.ask_sql(BY_MODE, purpose=TRANSIT)
        RECEIPTS.extend(o.receipt for o in answer.outcomes if o.receipt)
        refused = [o for o in answer.outcomes if o.status is not CityStatus.ANSWERED]
        if refused:
            console.print(f"  question {number}: {len(refused)} of {len(answer.outcomes)} "
                          "cities refused:")
            for o in refused:
                console.print(f"    {o.city:<13} {o.status.value.upper()} {o.code}: {o.detail}")
            break
        left = min(o.epsilon_remaining for o in answer.outcomes)
        console.print(f"  question {number}: {len(answer.table.rows)} modes, ε "
                      f"{answer.outcomes[0].epsilon_charged:g} charged by each city, ε {left:g} "
                      "left")
    quota_failure(coordinator, cities[0])


def quota_failure(coordinator: Coordinator, city: str) -> None:
    """The refusal as the node sends it: RESOURCE_EXHAUSTED with a google.rpc.QuotaFailure."""
    identity, manifest = coordinator.identity, coordinator.manifest
    member = manifest.member(city)
    plan_bytes = parse_query(BY_MODE).plan.SerializeToString()
    token = mint_token(key=identity.signing_key, kid=identity.kid, caller=identity.member_id,
                       audience=city, purpose=TRANSIT, plan_bytes=plan_bytes,
                       certificate_x5t=identity.certificate_x5t)
    with grpc.secure_channel(member.endpoint, identity.channel_credentials(),
                             options=channel_options(city, manifest.region)) as channel:
        stub = node_pb2_grpc.NodeServiceStub(channel)
        try:
            stub.Aggregate(node_pb2.AggregateRequest(plan=plan_bytes), timeout=10,
                           metadata=(("authorization", f"Bearer {token}"),))
        except grpc.RpcError as error:
            status = rpc_status.from_call(error)
            console.print(f"[dim]The same call straight to {city}'s NodeService:[/] "
                          f"{error.code().name}")
            for detail in status.details if status else ():
                quota = error_details_pb2.QuotaFailure()
                if detail.Unpack(quota):
                    for violation in quota.violations:
                        console.print(f"  google.rpc.QuotaFailure: subject "
                                      f"{violation.subject!r}")
                        console.print(f"    {violation.description}")
            return
    console.print(f"[red]{city} answered: its budget was not spent[/]")


def fraud_checks(region: Path) -> None:
    """The seeds' checks by private set intersection: each city's pension office and marriage
    register against every other city, and a count for the authority."""
    heading("Fraud checks across cities: private set intersection, no ID list leaves a city")
    truth = json.loads((region / "ground_truth.json").read_text())
    cities = [c for c in truth["cities"]]
    for check, owner, planted in (
            ("deceased-pension", "tianjin", lambda p: {
                c["person_id"] for c in truth["deceased_with_active_pension"]
                if c["pension_city"] == "tianjin" and c["deceased_in"] == p}),
            ("bigamy", "beijing", lambda p: {
                c["person_id"] for c in truth["married_in_two_cities"]
                if set(c["cities"]) == {"beijing", p}})):
        console.print(f"[dim]$ cityfed match {check} --owner {owner} --partner CITY "
                      f"--mode reveal-to-owner --as {owner}   (for each other city)[/]")
        shown = False
        for partner in (c for c in cities if c != owner):
            argv = ["match", check, "--owner", owner, "--partner", partner, "--mode",
                    "reveal-to-owner", "--as", owner, "--region", str(region)]
            if not shown:  # the first pair in full: the matches and what each party learned
                cityfed(argv, out=sys.stdout)
                shown = True
            out = io.StringIO()
            cityfed([*argv, "--json"], out=out)
            (result,) = json.loads(out.getvalue())
            expected = planted(partner)
            verdict = ("[green]every planted case, no false match[/]"
                       if set(result["matched_keys"]) == expected else "[red]MISMATCH[/]")
            console.print(f"  {owner} × {partner:<13} {len(result['matched_keys'])} found, "
                          f"{len(expected)} planted: {verdict}")
    pair = ("beijing", "tianjin")
    console.print(f"[dim]$ cityfed match medical-two-cities --owner {pair[0]} --partner "
                  f"{pair[1]} --as {AUTHORITY}   (a count for the authority: noised, since "
                  "both cities grant it only `match`)[/]")
    cityfed(["match", "medical-two-cities", "--owner", pair[0], "--partner", pair[1],
             "--as", AUTHORITY, "--region", str(region)], out=sys.stdout)
    planted = sum(1 for c in truth["medical_insurance_in_two_cities"] if set(c["cities"]) ==
                  set(pair))
    console.print(f"[dim]planted in ground_truth.json: {planted}[/]")


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


def choose_stores(region: Path, spark: str) -> None:
    """The largest city on Spark when this machine can run one, the others on DuckDB."""
    missing = spark_missing() if spark != "no" else "--spark no"
    if missing is None:
        locations = serve_from_spark(region, SPARK_CITY)
        console.print(f"{SPARK_CITY} is served from Spark ({SPARK_MASTER}, in its node's "
                      f"process), reading its {len(locations)} datasets as Parquet from "
                      f"{region / f'{SPARK_CITY}.parquet'}/ as it would read its own data "
                      "platform's tables; the other four from their DuckDB files. Nothing above "
                      "the store knows which one answers: the same plan, policy, privacy, audit "
                      "and receipts.")
        return
    if spark == "yes":
        raise SystemExit(f"--spark yes: {missing}")
    console.print(f"All five cities run on DuckDB ({missing}). With Java 17 and `make "
                  f"setup-spark`, {SPARK_CITY} is served from a local Spark instead.")


def show_stores(region: Path, cities: tuple[str, ...]) -> None:
    heading("Which store answers for each city")
    table = Table(show_edge=False, header_style="bold")
    for column in ("city", "store (its node config)", "reads"):
        table.add_column(column)
    for city in cities:
        store = store_of(region, city)
        table.add_row(city, store, f"{city}.parquet/<dataset>/*.parquet" if store != "duckdb"
                      else f"{city}.duckdb")
    console.print(table)
    if any(store_of(region, city) != "duckdb" for city in cities):
        console.print("[dim]Each city's answer below says how long it took: a Spark job has a "
                      "fixed cost of its own (bench-results/spark/REPORT.md).[/]")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("region/demo"))
    parser.add_argument("--people", type=int, default=20_000)
    # Private answers release a group only when its noisy count passes a threshold of several
    # hundred rows per city: enough trips and visits that the tour's groups show.
    parser.add_argument("--trips", type=int, default=500_000)
    parser.add_argument("--visits", type=int, default=300_000)
    parser.add_argument("--spark", choices=("auto", "yes", "no"), default="auto",
                        help=f"serve {SPARK_CITY} from a local Spark (auto: when Java 17 and "
                             "pyspark are installed)")
    args = parser.parse_args(argv)
    started = time.perf_counter()

    heading("Generating a seeded five-city region (Beijing–Tianjin–Hebei) with its trust")
    scale = RegionScale(people_per_city=args.people, trips_per_city=args.trips,
                        visits_per_city=args.visits)
    trusted = write_region(args.dir, scale=scale)
    console.print(f"{args.dir}: a root key and CA, a TLS certificate and signing key per member, "
                  "a signed manifest, one DuckDB file, policy and node config per city")
    choose_stores(args.dir, args.spark)

    heading("Starting five city nodes (mutual TLS only) and the authority's gateway")
    cities = tuple(trusted.endpoints)
    with start_local_region(args.dir, cities) as running:
        for city in cities:
            console.print(f"  {city:<13} {running.addresses[city]}")
        manifest, identity = trusted.directory.open_as(AUTHORITY)
        gateway = start_gateway(manifest, identity, "127.0.0.1:0")
        console.print(f"  gateway       127.0.0.1:{gateway.port} (serves {AUTHORITY})")
        show_stores(args.dir, cities)
        try:
            with Coordinator(manifest, identity) as coordinator:
                ask("Residents by age band, across the cluster", AGE_BANDS, args.dir,
                    "population-statistics", "--require-all")
                ask("Trips on transport cards used outside their issuing city, by hour",
                    commuting_sql(), args.dir, TRANSIT, "--require-all")
                console.print("[dim]Each city released only the hours whose noisy trip count "
                              "passed its threshold (about a thousand trips, set by ε, δ and the "
                              "20 trips one person may add): a row sums the cities that released "
                              "it, and quiet hours in small cities stay home.[/]")
                medical_by_chapter(coordinator)
                refused_question(args.dir)
                same_answer_over_grpc(gateway.port, AGE_BANDS, coordinator)
                budget_spent(args.dir, coordinator, cities)
            fraud_checks(args.dir)

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
