"""Differential privacy at the `aggregate` level: one test per weakness a determined member used
(issue 9), each against real nodes, plus the arithmetic it rests on.

The statistical tests run one attack many times on neighbouring cities — "with" holds the target
person, "without" is the same store less that person's rows — and check what the member can see:
the answers must be spread at least as widely as the clamp bound divided by ε, and the two cities'
answers must be indistinguishable to a two-sample test. On the old exact path every such answer
was the target's value itself, and these tests fail.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path

import duckdb
import grpc
import pytest
from cityfed.v1 import node_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from federation.coordination.coordinator import CityStatus, Coordinator
from federation.errors import BudgetExhausted
from federation.privacy import noise as privacy
from federation.query.sql import parse_query
from federation.synthetic.local_region import init_trusted_region
from node.budget import BudgetLimits, PrivacyBudget
from node.compile import compile_private_plan
from node.policy import DatasetPrivacy, PrivacySettings
from tests import regionkit, sparkkit
from tests.regionkit import AUDITOR, OUTSIDER, PURPOSE

WITH, WITHOUT = "beijing", "tianjin"
EPSILON = 1.0
POLICY = f"""
[privacy]
epsilon_per_question = {EPSILON}
epsilon_per_period = 100000
delta_per_period = 0.001

[[rules]]
dataset = "social_insurance"
columns = ["*"]
callers = ["{AUDITOR}"]
purposes = ["*"]
level = "aggregate"

[[rules]]
dataset = "population"
columns = ["*"]
callers = ["{AUDITOR}"]
purposes = ["*"]
level = "aggregate"
"""
MONTHLY_BOUNDS = (Decimal(0), Decimal(10_000))  # social_insurance.monthly_amount's default
RUNS = 40


@pytest.fixture(scope="module", params=sparkkit.STORES)
def neighbours(request, tmp_path_factory):
    """Two cities whose stores differ by exactly one person: the target. With "spark", both
    are served from Spark."""
    directory = tmp_path_factory.mktemp("neighbours")
    regionkit.build_city_store(directory / f"{WITH}.duckdb", seed=11, rows=3_000)
    connection = duckdb.connect(str(directory / f"{WITH}.duckdb"))
    # The target: a person with one enrolment whose date nobody else shares.
    target, enrolled_on, amount = connection.execute(
        "SELECT person_id, any_value(enrolled_on), any_value(monthly_amount) "
        "FROM social_insurance GROUP BY person_id HAVING count(*) = 1 AND any_value(enrolled_on) "
        "IN (SELECT enrolled_on FROM social_insurance GROUP BY 1 HAVING count(*) = 1) "
        "ORDER BY any_value(monthly_amount) DESC LIMIT 1").fetchone()
    by_scheme = dict(connection.execute(
        "SELECT scheme, count(*) FROM social_insurance GROUP BY 1").fetchall())
    connection.close()
    shutil.copyfile(directory / f"{WITH}.duckdb", directory / f"{WITHOUT}.duckdb")
    connection = duckdb.connect(str(directory / f"{WITHOUT}.duckdb"))
    connection.execute("DELETE FROM social_insurance WHERE person_id = ?", [target])
    connection.close()
    trusted = init_trusted_region(directory, region="test", cities=(WITH, WITHOUT),
                                  authorities=(AUDITOR, OUTSIDER))
    nodes = regionkit.start_nodes(trusted, (WITH, WITHOUT), POLICY,
                                  spark_cities=sparkkit.on_spark(request.param, WITH, WITHOUT))
    manifest, identity = trusted.directory.open_as(AUDITOR)
    running = regionkit.RunningRegion(directory, trusted, nodes, Coordinator(manifest, identity),
                                      duckdb.connect())
    running.target = (target, enrolled_on, amount)
    running.by_scheme = by_scheme
    running.store = request.param
    yield running
    running.stop()


def answers(region, sql: str, city: str, runs: int = RUNS) -> list[float]:
    values = []
    for _ in range(runs):
        answer = region.ask(sql, cities=(city,))
        assert answer.complete and answer.private
        [row] = answer.table.rows
        values.append(float(row[0] or 0))
    return values


def spread(values: list[float]) -> float:
    """The mean absolute deviation from the median: the scale b of Laplace noise."""
    middle = statistics.median(values)
    return statistics.fmean(abs(v - middle) for v in values)


def ks_statistic(a: list[float], b: list[float]) -> float:
    """The two-sample Kolmogorov–Smirnov statistic: the largest gap between the samples' CDFs."""
    points = sorted(set(a) | set(b))
    return max(abs(sum(x <= p for x in a) / len(a) - sum(x <= p for x in b) / len(b))
               for p in points)


# 1 in 10,000 for two samples of 40 from one distribution (c(α) = 2.15 at α = 1e-4).
KS_CRITICAL = 2.15 * (2 / RUNS) ** 0.5


def _isolating_sum(neighbours) -> str:
    """`1 // (d*d + 1)` is 1 for the target's row only: the exact path returned their amount."""
    day = neighbours.target[1].isoformat()
    return (f"SELECT sum(monthly_amount * (1 // (date_diff('day', enrolled_on, DATE '{day}') * "
            f"date_diff('day', enrolled_on, DATE '{day}') + 1))) FROM social_insurance")


def _statistical(neighbours) -> None:
    """Skip a many-run statistical test on Spark (each answer is a Spark job): the noise is
    drawn above the store, and test_one_person_moves_the_stores_private_answer_by_the_clamp
    checks the Spark store's part, the bounded and clamped sums the noise is added to."""
    if neighbours.store == "spark":
        pytest.skip("statistical: run on DuckDB; the store's part is checked on Spark")


def test_one_person_moves_the_stores_private_answer_by_the_clamp(neighbours):
    _, _, amount = neighbours.target
    privacy = DatasetPrivacy(5, {"monthly_amount": MONTHLY_BOUNDS})
    answers = {}
    for city in (WITH, WITHOUT):
        store = neighbours.nodes[city].store
        plan = compile_private_plan(parse_query(_isolating_sum(neighbours)).plan, privacy,
                                    store.dialect)
        ((rows, total),) = store.aggregate(plan, timeout=60)
        answers[city] = (rows, Decimal(total))
    assert answers[WITH][0] - answers[WITHOUT][0] == 1
    assert answers[WITH][1] - answers[WITHOUT][1] == min(max(amount, MONTHLY_BOUNDS[0]),
                                                         MONTHLY_BOUNDS[1])


def test_isolating_one_person_inside_a_sum_gives_only_noise_of_the_clamp_over_epsilon(neighbours):
    _statistical(neighbours)
    _, _, amount = neighbours.target
    sql = _isolating_sum(neighbours)
    with_target = answers(neighbours, sql, WITH)
    without_target = answers(neighbours, sql, WITHOUT)
    assert Decimal(str(with_target[0])) != amount or with_target[1] != with_target[0]
    clamp_over_epsilon = float(MONTHLY_BOUNDS[1]) / EPSILON
    assert spread(with_target) >= 0.7 * clamp_over_epsilon
    assert spread(without_target) >= 0.7 * clamp_over_epsilon
    assert ks_statistic(with_target, without_target) < KS_CRITICAL


def test_differencing_two_questions_leaves_noise_of_at_least_one_over_epsilon(neighbours):
    _statistical(neighbours)
    target, _, _ = neighbours.target
    everyone = answers(neighbours, "SELECT count(*) FROM social_insurance", WITH, runs=30)
    but_one = answers(neighbours, f"SELECT count(*) FROM social_insurance WHERE person_id <> "
                      f"'{target}'", WITH, runs=30)
    differences = [a - b for a, b in zip(everyone, but_one, strict=True)]
    # Each count holds Laplace noise of scale max_rows_per_person / ε = 5: the difference of two
    # is spread far wider than the one row it would reveal.
    assert spread(differences) >= 1 / EPSILON
    assert sum(d == 1 for d in differences) < len(differences) / 2


def test_whether_a_filter_matches_anyone_is_not_revealed_by_withheld_groups(neighbours):
    """`suppressed_groups` was an oracle: 1 withheld group meant the filter matched someone."""
    target, _, _ = neighbours.target
    sql = (f"SELECT scheme, count(*) FROM social_insurance WHERE person_id = '{target}' "
           "GROUP BY scheme")
    plan = parse_query(sql).plan.SerializeToString()
    for city in (WITH, WITHOUT):
        for _ in range(2 if neighbours.store == "spark" else 10):  # the threshold's noise
            response = regionkit.aggregate(neighbours, city, plan)
            assert list(response.groups) == [] and response.suppressed_groups == 0
            assert response.privacy.threshold > response.privacy.max_rows_per_person


@pytest.mark.parametrize("function", ["min", "max"])
def test_min_and_max_are_refused_on_a_private_answer(neighbours, function):
    plan = parse_query(f"SELECT {function}(monthly_amount) FROM social_insurance").plan
    with pytest.raises(grpc.RpcError) as failure:
        regionkit.aggregate(neighbours, WITH, plan.SerializeToString())
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"{function}() is refused in a private answer" in failure.value.details()


def test_a_private_answer_says_its_noise_interval_and_epsilon(neighbours):
    answer = neighbours.ask("SELECT scheme, count(*) AS n, sum(monthly_amount) AS total, "
                            "avg(monthly_amount) AS mean FROM social_insurance GROUP BY scheme "
                            "ORDER BY scheme", cities=(WITH,))
    [outcome] = answer.outcomes
    assert outcome.private and outcome.epsilon_charged == EPSILON
    report = outcome.privacy
    assert report.max_rows_per_person == 5 and report.threshold > 5
    assert [a.lower_bound for a in report.aggregates] == ["", "0", "0"]
    # One row-count vector and, for sum and avg, a sum each and avg's count: ε split four ways.
    assert report.aggregates[0].count_scale == pytest.approx(5 / (EPSILON / 4))
    assert report.aggregates[1].sum_scale == pytest.approx(5 * 10_000 / (EPSILON / 4))
    key, n, total, mean = (answer.accuracy[i] for i in range(4))
    assert not key.noisy and n.noisy and total.noisy and mean.noisy
    assert len(n.half_widths) == len(answer.table.rows) > 0
    assert n.half_widths[0] == privacy.half_width([report.aggregates[0].count_scale])
    exact = neighbours.by_scheme
    for row, (scheme, count, _, _) in enumerate(answer.table.rows):
        assert abs(count - exact[scheme]) <= 4 * n.half_widths[row]


def test_the_catalog_gives_an_exact_row_count_only_to_a_caller_who_may_read_the_rows(neighbours):
    catalog = regionkit.node_stub(neighbours, WITH).ListDatasets(
        node_pb2.ListDatasetsRequest(purpose=PURPOSE))
    counts = {d.name: d.row_count for d in catalog.datasets}
    assert counts["social_insurance"] == 0 and counts["population"] == 0


def test_candidate_groups_beyond_the_result_limit_are_not_an_oracle(tmp_path):
    """Refusing on the number of groups before the threshold would say whether one person's
    group exists; only the released groups count against max_result_groups."""
    region = regionkit.start_region(tmp_path, (WITH,), rows=300, seed=5, policy_text=POLICY,
                                    max_result_groups=5)
    try:
        plan = parse_query("SELECT enrolled_on, count(*) FROM social_insurance "
                           "GROUP BY enrolled_on").plan.SerializeToString()
        response = regionkit.aggregate(region, WITH, plan)
        assert list(response.groups) == []  # hundreds of one-person dates, none released
    finally:
        region.stop()


# The budget.

SMALL_BUDGET = POLICY.replace("epsilon_per_period = 100000", "epsilon_per_period = 2")


@pytest.fixture
def small_budget(tmp_path):
    running = regionkit.start_region(tmp_path, (WITH,), rows=500, seed=3,
                                     policy_text=SMALL_BUDGET)
    yield running
    running.stop()


def test_a_spent_budget_is_resource_exhausted_with_a_quota_failure(small_budget):
    sql = "SELECT count(*) FROM social_insurance"
    plan = parse_query(sql).plan.SerializeToString()
    first = regionkit.aggregate(small_budget, WITH, plan)
    assert first.privacy.budget.epsilon_spent == 1 and first.privacy.budget.epsilon_limit == 2
    regionkit.aggregate(small_budget, WITH, plan)
    with pytest.raises(grpc.RpcError) as failure:
        regionkit.aggregate(small_budget, WITH, plan)
    assert failure.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    status = rpc_status.from_call(failure.value)
    quota = error_details_pb2.QuotaFailure()
    assert any(detail.Unpack(quota) for detail in status.details)
    today = dt.datetime.now(dt.UTC).date().isoformat()
    assert quota.violations[0].subject == f"{AUDITOR}/{PURPOSE}/{today}"
    answer = small_budget.ask(sql)
    assert answer.outcomes[0].status is CityStatus.REFUSED
    assert answer.outcomes[0].code == "RESOURCE_EXHAUSTED" and answer.table.rows == []
    catalog = regionkit.node_stub(small_budget, WITH).ListDatasets(
        node_pb2.ListDatasetsRequest(purpose=PURPOSE))
    assert (catalog.budget.epsilon_spent, catalog.budget.epsilon_limit) == (2, 2)
    records = _audit_records(small_budget, WITH)
    charged = [r for r in records if r.get("method", "").endswith("/Aggregate")]
    assert [r["epsilon"] for r in charged] == [1.0, 1.0, 0.0, 0.0]
    assert [r["decision"] for r in charged] == ["granted", "granted", "refused", "refused"]


def test_a_charge_is_kept_when_the_query_then_fails(tmp_path):
    """Charged before the query runs, never refunded: here every query meets its deadline."""
    region = regionkit.start_region(tmp_path, (WITH,), rows=100, seed=8,
                                    policy_text=SMALL_BUDGET, max_query_seconds=0.0)
    try:
        plan = parse_query("SELECT count(*) FROM social_insurance").plan.SerializeToString()
        with pytest.raises(grpc.RpcError) as failure:
            regionkit.aggregate(region, WITH, plan, timeout=10)
        assert failure.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        catalog = regionkit.node_stub(region, WITH).ListDatasets(
            node_pb2.ListDatasetsRequest(purpose=PURPOSE))
        assert catalog.budget.epsilon_spent == 1
        [record] = [r for r in _audit_records(region, WITH) if r["method"].endswith("/Aggregate")]
        assert (record["decision"], record["epsilon"]) == ("refused", 1.0)
    finally:
        region.stop()


def test_cityfed_budget_shows_what_is_left(small_budget):
    from cli.main import main

    small_budget.ask("SELECT count(*) FROM social_insurance")
    import contextlib
    import io
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["budget", "--region", str(small_budget.directory), "--as", AUDITOR,
                     "--purpose", PURPOSE])
    assert code == 0
    assert f"{WITH}" in out.getvalue() and "ε 1 of 2 left" in out.getvalue()


def test_cityfed_query_prints_intervals_noise_and_epsilon_and_json_carries_them(small_budget):
    import contextlib
    import io
    import json

    from cli.main import main

    sql = "SELECT scheme, count(*) AS n FROM social_insurance GROUP BY scheme ORDER BY scheme"
    common = ["query", sql, "--region", str(small_budget.directory), "--as", AUDITOR,
              "--purpose", PURPOSE]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(common) == 0
    text = out.getvalue()
    assert " ±" in text and "noise standard deviation: n " in text
    assert f"{WITH}" in text and "ε 1 charged, ε 1 left" in text
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main([*common, "--json"]) == 0
    answer = json.loads(out.getvalue())
    assert answer["private"] and [a["noisy"] for a in answer["accuracy"]] == [False, True]
    assert len(answer["accuracy"][1]["half_widths_95"]) == len(answer["rows"])
    [city] = answer["cities"]
    assert (city["epsilon_charged"], city["epsilon_remaining"]) == (1.0, 0.0)
    assert city["noise"]["aggregates"][0]["count_scale"] == 5.0


def test_concurrent_questions_never_overspend(small_budget):
    plan = parse_query("SELECT count(*) FROM population").plan.SerializeToString()
    outcomes: list[grpc.StatusCode] = []

    def ask():
        try:
            regionkit.aggregate(small_budget, WITH, plan)
            outcomes.append(grpc.StatusCode.OK)
        except grpc.RpcError as error:
            outcomes.append(error.code())

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes, key=str).count(grpc.StatusCode.OK) == 2
    assert outcomes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == 6


def _audit_records(region, city: str) -> list[dict]:
    from node.audit import read_records
    return list(read_records(region.nodes[city].config.state_path / "audit"))


# The budget store itself.

LIMITS = BudgetLimits(epsilon=1.0, delta=1e-5, period="day")


def test_a_charge_is_refused_whole_when_it_does_not_fit(tmp_path):
    budget = PrivacyBudget(tmp_path / "budget.sqlite")
    for _ in range(10):
        budget.charge("a", "p", 0.1, 1e-7, LIMITS)  # ten tenths fit in 1.0
    with pytest.raises(BudgetExhausted):
        budget.charge("a", "p", 0.1, 0.0, LIMITS)
    assert budget.state("a", "p", LIMITS).epsilon_spent == pytest.approx(1.0)
    assert budget.state("b", "p", LIMITS).epsilon_spent == 0  # per caller
    assert budget.state("a", "q", LIMITS).epsilon_spent == 0  # per purpose


def test_a_spent_delta_is_named_as_such(tmp_path):
    budget = PrivacyBudget(tmp_path / "budget.sqlite")
    budget.charge("a", "p", 0.1, 1e-5, LIMITS)
    with pytest.raises(BudgetExhausted, match="δ 1e-05 of 1e-05 used, this question needs 1e-07"):
        budget.charge("a", "p", 0.1, 1e-7, LIMITS)


def test_the_budget_is_full_again_in_the_next_period(tmp_path):
    now = [dt.datetime(2026, 12, 1, 23, 59, tzinfo=dt.UTC)]
    budget = PrivacyBudget(tmp_path / "budget.sqlite", clock=lambda: now[0])
    budget.charge("a", "p", 1.0, 0.0, LIMITS)
    with pytest.raises(BudgetExhausted, match="resets at 2026-12-02T00:00:00Z"):
        budget.charge("a", "p", 1.0, 0.0, LIMITS)
    now[0] += dt.timedelta(minutes=2)
    assert budget.charge("a", "p", 1.0, 0.0, LIMITS).period == "2026-12-02"


_CHARGE_THEN_DIE = """
import os, signal, sys
from pathlib import Path
from node.budget import BudgetLimits, PrivacyBudget
budget = PrivacyBudget(Path(sys.argv[1]))
budget.charge("a", "p", 0.25, 0.0, BudgetLimits(1.0, 1e-5, "day"))
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_charge_survives_kill_minus_9_and_is_never_refunded(tmp_path):
    path = tmp_path / "budget.sqlite"
    root = Path(__file__).resolve().parent.parent
    for _ in range(2):
        died = subprocess.run([sys.executable, "-c", _CHARGE_THEN_DIE, str(path)], cwd=root,
                              env={**os.environ, "PYTHONPATH": str(root)})
        assert died.returncode == -signal.SIGKILL
    assert PrivacyBudget(path).state("a", "p", LIMITS).epsilon_spent == pytest.approx(0.5)


# The arithmetic.


@pytest.mark.parametrize(("rows", "scale", "delta"), [(1, 2.0, 1e-6), (5, 20.0, 1e-7),
                                                      (20, 60.0, 1e-6)])
def test_the_threshold_keeps_delta_also_when_a_count_lands_on_it(rows, scale, delta):
    threshold = privacy.threshold_for(rows, scale, delta)
    assert privacy._delta_at(rows, scale, threshold - 1) <= delta
    assert privacy._delta_at(rows, scale, threshold - 2) > delta
    # The exact chance that one person's group of `rows` rows passes (discrete Laplace:
    # P(X >= k) = p^k / (1 + p)), for each of the at most `rows` groups the person is in.
    p = math.exp(-1 / scale)
    assert rows * p ** (threshold - rows) / (1 + p) <= delta


def test_a_one_person_group_passes_the_threshold_no_more_often_than_delta_says():
    scale, delta = 1.0, 5e-3
    threshold = privacy.threshold_for(1, scale, delta)
    noises = privacy.noisy_vector([1] * 200_000, scale)
    assert sum(n >= threshold for n in noises) / len(noises) <= delta * 1.2


@pytest.mark.parametrize("scales", [[10.0], [10.0] * 5, [3.0, 40.0]])
def test_the_95_percent_half_width_holds_at_least_95_percent(scales):
    width = privacy.half_width(scales)
    noises = [privacy.noisy_vector([0] * 20_000, s) for s in scales]
    totals = [sum(column) for column in zip(*noises, strict=True)]
    assert sum(abs(t) <= width for t in totals) / len(totals) >= 0.94


def test_a_private_plan_reads_bounded_rows_and_cannot_fail_on_a_row():
    plan = parse_query("SELECT scheme, sum(monthly_amount * 1000000000000) FROM social_insurance "
                       "WHERE monthly_amount // 0 > 1 GROUP BY scheme").plan
    private = compile_private_plan(plan, PrivacySettings().of("social_insurance"))
    assert '"_person_row_rank" <= ?' in private.sql and private.params.count(5) >= 1
    assert "TRY((" in private.sql and "least(greatest(" in private.sql


def test_a_private_sum_needs_a_column_with_declared_bounds():
    from federation.errors import InvalidQuery
    plan = parse_query("SELECT sum(date_diff('day', birth_date, registered_on)) "
                       "FROM population").plan
    with pytest.raises(InvalidQuery, match="needs a numeric column with declared bounds"):
        compile_private_plan(plan, PrivacySettings().of("population"))


def test_an_append_draws_the_order_of_its_persons_rows_again(tmp_path):
    from node.ingest import IngestMode
    from node.stores.duckdb import DuckDBStore

    rows = [f"11010119900101{i % 7:03d}X,pension,active,2020-01-0{1 + i % 9},{i}.00,"
            for i in range(40)]
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    header = "person_id,scheme,status,enrolled_on,monthly_amount,last_paid_on\n"
    first.write_text(header + "\n".join(rows[:25]) + "\n")
    second.write_text(header + "\n".join(rows[25:]) + "\n")
    store = DuckDBStore(tmp_path / "city.duckdb", threads=1)
    try:
        store.ingest("social_insurance", first, IngestMode.REPLACE)
        store.ingest("social_insurance", second, IngestMode.APPEND)
        ranks = store._connection.execute(
            "SELECT person_id, list(_person_row_rank ORDER BY _person_row_rank), count(*) "
            "FROM social_insurance GROUP BY 1").fetchall()
        (appended_on_top,) = store._connection.execute(
            "SELECT count(*) FROM social_insurance WHERE monthly_amount >= 25 "
            "AND _person_row_rank <= 3").fetchone()
    finally:
        store.close()
    assert len(ranks) == 7
    for _, ranked, count in ranks:
        assert ranked == list(range(1, count + 1))
    # Every person had rows before the append: the order was drawn again over all of them, so
    # appended rows are among the first three too (ranked after the old ones, they never were).
    assert appended_on_top > 0


def test_a_residents_cards_are_one_unit_and_an_anonymous_card_is_its_own(tmp_path):
    from node.ingest import IngestMode
    from node.stores.duckdb import DuckDBStore

    header = "card_id,person_id,tapped_at,mode,line,station,district_code,fare,card_city\n"
    person = "110101199001011234"
    taps = [f"C{i % 2},{person},2026-09-01 08:0{i}:00,metro,L1,S1,110101,3.00,110000"
            for i in range(6)]
    taps += [f"A9,,2026-09-01 09:0{i}:00,bus,B1,S2,110101,2.00,110000" for i in range(3)]
    path = tmp_path / "taps.csv"
    path.write_text(header + "\n".join(taps) + "\n")
    store = DuckDBStore(tmp_path / "city.duckdb", threads=1)
    try:
        store.ingest("transit_trips", path, IngestMode.REPLACE)
        ranks = dict(store._connection.execute(
            "SELECT coalesce(person_id, card_id), list(_person_row_rank ORDER BY "
            "_person_row_rank) FROM transit_trips GROUP BY 1").fetchall())
    finally:
        store.close()
    assert ranks == {person: [1, 2, 3, 4, 5, 6], "A9": [1, 2, 3]}


def test_a_private_sum_too_large_for_64_bits_is_held_there_not_failed():
    from node.compile import ClampedSum, PrivatePlan
    from node.release import release

    clamp = ClampedSum(Decimal(0), Decimal(10) ** 12, 6)
    plan = PrivatePlan(dataset=None, sql="", params=[], key_count=0, parts=(("sum",),),
                       sums=(clamp,), max_rows_per_person=1)
    huge = Decimal(10) ** 16  # 10^22 units of 10^-6
    released = release([(5, huge)], plan, epsilon=1.0, delta=0.0)
    [group] = released.groups
    assert group.aggregates[0].HasField("sum")


@pytest.mark.parametrize(("argument", "per_row"), [
    ("monthly_amount", [Decimal("0.01"), Decimal("5000.00"), Decimal("10000.00")]),
    ("-monthly_amount", [Decimal(0)] * 3),
    ("monthly_amount / 0", [Decimal("10000.00")] * 3),  # DOUBLE infinity
    ("monthly_amount * 1000000000000000000000", [Decimal("10000.00")] * 3),
    ("monthly_amount / 3", [Decimal("0.00"), Decimal("1666.67"), Decimal("10000.00")]),
])
def test_a_private_sum_clamps_every_row_to_the_bounds_and_never_fails(tmp_path, argument,
                                                                        per_row):
    """Before noise: each row adds its value clamped to [0, 10000], whatever the arithmetic."""
    from node.ingest import IngestMode
    from node.stores.duckdb import DuckDBStore

    path = tmp_path / "amounts.csv"
    path.write_text("person_id,scheme,status,enrolled_on,monthly_amount,last_paid_on\n"
                    + "".join(f"11010119900101{i:03d}X,pension,active,2020-01-01,{amount},\n"
                              for i, amount in enumerate(("0.01", "5000.00", "99999.99"))))
    store = DuckDBStore(tmp_path / "city.duckdb", threads=1)
    try:
        store.ingest("social_insurance", path, IngestMode.REPLACE)
        plan = parse_query(f"SELECT sum({argument}) FROM social_insurance").plan
        private = compile_private_plan(plan, PrivacySettings().of("social_insurance"))
        [(rows, total)] = store.aggregate(private, timeout=10)
    finally:
        store.close()
    assert rows == 3 and total == sum(per_row)


def test_a_node_killed_after_answering_still_holds_every_charge(tmp_path):
    """kill -9 of a real node process: what it charged before it died stays charged."""
    from federation.synthetic import RegionScale
    from federation.synthetic.local_region import AUTHORITY, start_local_region, write_region

    trusted = write_region(tmp_path, scale=RegionScale(people_per_city=300, trips_per_city=500,
                                                       visits_per_city=300),
                           cities=("beijing", "tianjin"))
    manifest, identity = trusted.directory.open_as(AUTHORITY)
    sql = "SELECT count(*) FROM population"
    purpose = "population-statistics"
    with start_local_region(tmp_path, ("tianjin",)) as running:
        with Coordinator(manifest, identity) as coordinator:
            for _ in range(3):
                answer = coordinator.ask_sql(sql, purpose=purpose, cities=("tianjin",))
                assert answer.outcomes[0].status is CityStatus.ANSWERED
        running.kill("tianjin")
    with start_local_region(tmp_path, ("tianjin",)), Coordinator(manifest, identity) as again:
        [(_, catalog, _)] = again.catalogs(purpose, ("tianjin",))
        assert catalog.budget.epsilon_spent == 3
