"""Private set intersection between real nodes over a generated region: the seeds' fraud checks
find exactly the planted cases for every ordered pair of cities, and a member that tries to get
more than its grant is refused, with the refusal in the node's audit log."""

from __future__ import annotations

import itertools
import json
import shutil

import duckdb
import grpc
import pytest
from cityfed.v1 import federation_pb2, federation_pb2_grpc, linkage_pb2, node_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from federation.coordination.coordinator import CityStatus, Coordinator
from federation.linkage.asker import run_linkage
from federation.linkage.checks import CHECKS, SideSpec, build_plan, plan_for, side
from federation.linkage.plan import sign
from federation.serving.grpc_errors import error_reason
from federation.synthetic import RegionScale, generate_region
from federation.synthetic.local_region import init_trusted_region
from node.audit import read_records
from node.server import start_node
from tests.regionkit import node_config, node_stub, token_for

CITIES = ("beijing", "tianjin", "langfang", "baoding", "shijiazhuang")
EXACT = "auditor"  # an authority granted `row`: its counts are exact
PRIVATE = "jjj-health"  # an authority granted `match`: its counts are noised
OUTSIDER = "outsider"  # granted nothing
PURPOSES = '["pension-fraud-check", "medical-insurance-check", "marriage-registry-check"]'
LINKAGE_COLUMNS = {
    "population": '["person_id", "deceased_on", "sex", "birth_date"]',
    "social_insurance": '["person_id", "scheme", "status"]',
    "marriages": '["spouse1_id", "spouse2_id", "dissolved_on", "registered_on"]',
}


ORACLE_PURPOSE = "population-statistics"  # cities grant each other `row` for it: no budget


def city_policy(city: str) -> str:
    rules = ["[privacy]\nepsilon_per_question = 1.0\ndelta_per_question = 1e-9\n"
             "epsilon_per_period = 6.0\ndelta_per_period = 1e-6\nperiod = \"day\"\n"]
    for dataset, columns in LINKAGE_COLUMNS.items():
        rules.append(f'[[rules]]\ndataset = "{dataset}"\ncolumns = {columns}\n'
                     f'callers = ["role:city", "{PRIVATE}"]\npurposes = {PURPOSES}\n'
                     'level = "match"\n')
        rules.append(f'[[rules]]\ndataset = "{dataset}"\ncolumns = ["*"]\n'
                     f'callers = ["{city}", "{EXACT}"]\npurposes = {PURPOSES}\nlevel = "row"\n')
        rules.append(f'[[rules]]\ndataset = "{dataset}"\ncolumns = ["*"]\n'
                     f'callers = ["role:city", "{EXACT}"]\npurposes = ["{ORACLE_PURPOSE}"]\n'
                     'level = "row"\n')
    return "\n".join(rules)


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    directory = tmp_path_factory.mktemp("linkage")
    trusted = init_trusted_region(directory, region="test", cities=CITIES,
                                  authorities=(EXACT, PRIVATE, OUTSIDER))
    truth_path = generate_region(directory, RegionScale(people_per_city=2_000,
                                                        trips_per_city=1_000,
                                                        visits_per_city=1_000), seed=11)
    central = duckdb.connect()  # the oracle: copies of the cities' files, read-only
    for city in CITIES:
        shutil.copy(directory / f"{city}.duckdb", directory / f"central-{city}.duckdb")
        central.execute(f"ATTACH '{directory / f'central-{city}.duckdb'}' AS {city} (READ_ONLY)")
    nodes = {}
    for city in CITIES:
        policy = directory / f"{city}.policy.toml"
        policy.write_text(city_policy(city))
        nodes[city] = start_node(node_config(trusted, city, directory / f"{city}.duckdb", policy,
                                             linkage_workers=2, linkage_max_sessions=64))
    coordinators = {}

    def coordinator(member: str) -> Coordinator:
        if member not in coordinators:
            manifest, identity = trusted.directory.open_as(member)
            coordinators[member] = Coordinator(manifest, identity)
        return coordinators[member]

    class Region:
        pass

    running = Region()
    running.directory, running.trusted, running.nodes = directory, trusted, nodes
    running.coordinator = coordinator
    running.truth = json.loads(truth_path.read_text())
    running.central = central
    yield running
    central.close()
    for c in coordinators.values():
        c.close()
    for node in nodes.values():
        node.stop(grace=None)


def planted(truth: dict, check: str, owner: str, partner: str) -> set[str]:
    if check == "deceased-pension":
        return {case["person_id"] for case in truth["deceased_with_active_pension"]
                if case["pension_city"] == owner and case["deceased_in"] == partner}
    key = CHECKS[check].ground_truth
    return {case["person_id"] for case in truth[key] if set(case["cities"]) == {owner, partner}}


@pytest.mark.parametrize("check", sorted(CHECKS))
def test_every_planted_case_is_found_for_every_ordered_pair(region, check):
    """reveal-to-owner, asked by the owner city itself: exactly the planted people."""
    assert any(planted(region.truth, check, a, b) for a, b in itertools.permutations(CITIES, 2))
    for owner, partner in itertools.permutations(CITIES, 2):
        plan = build_plan(check, owner=owner, partner=partner, mode="reveal-to-owner")
        outcome = run_linkage(region.coordinator(owner), plan, purpose=CHECKS[check].purpose)
        assert outcome.complete, outcome.outcomes
        assert set(outcome.result.matched_keys) == planted(region.truth, check, owner, partner)
        assert outcome.result.exact
        # The partner granted the owner only `match`: its set size came padded.
        assert outcome.result.partner_padded and not outcome.result.owner_padded
        assert {(r.city, r.step) for r in outcome.receipts} == {
            (owner, "open"), (owner, "finish"), (partner, "open"), (partner, "reblind")}


# Conditions per dataset for the oracle, in cityfed's SQL and in DuckDB's (the same text here).
SIDES = {
    "population": (("person_id",), ("", "deceased_on IS NOT NULL", "deceased_on IS NULL",
                                     "sex = 'F'", "birth_date < DATE '1960-01-01'")),
    "social_insurance": (("person_id",), ("", "scheme = 'pension'", "scheme = 'medical'",
                                           "status = 'active'",
                                           "scheme = 'medical' AND status <> 'closed'")),
    "marriages": (("spouse1_id", "spouse2_id"), ("", "dissolved_on IS NULL",
                                                  "registered_on >= DATE '2000-01-01'")),
}


def sides():
    return st.sampled_from(sorted(SIDES)).flatmap(
        lambda dataset: st.tuples(st.just(dataset), st.sampled_from(SIDES[dataset][1])))


def central_set(region, city: str, dataset: str, condition: str) -> str:
    keys, _ = SIDES[dataset]
    where = f" WHERE {condition}" if condition else ""
    return " UNION ".join(f"SELECT {k} AS k FROM {city}.{dataset}{where}" for k in keys)


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pair=st.permutations(CITIES).map(lambda c: c[:2]), owner_side=sides(),
       partner_side=sides())
def test_matches_equal_duckdb_over_both_cities(region, pair, owner_side, partner_side):
    """The oracle: what the owner learns equals DuckDB's intersection of the two sets, computed
    over copies of both cities' files; and a member granted row gets the same count, exact."""
    owner, partner = pair
    plan_sides = [side(city, SideSpec(dataset, SIDES[dataset][0], condition))
                  for city, (dataset, condition) in zip(pair, (owner_side, partner_side),
                                                        strict=True)]
    expected = {row[0] for row in region.central.execute(
        f"SELECT k FROM ({central_set(region, owner, *owner_side)}) WHERE k IS NOT NULL "
        f"INTERSECT SELECT k FROM ({central_set(region, partner, *partner_side)})").fetchall()}
    revealed = run_linkage(region.coordinator(owner), plan_for(
        owner=plan_sides[0], partner=plan_sides[1], mode="reveal-to-owner"),
        purpose=ORACLE_PURPOSE)
    assert revealed.complete, revealed.outcomes
    assert set(revealed.result.matched_keys) == expected
    counted = run_linkage(region.coordinator(EXACT), plan_for(
        owner=plan_sides[0], partner=plan_sides[1], mode="count"),
        purpose=ORACLE_PURPOSE)
    assert counted.complete, counted.outcomes
    assert counted.result.exact and counted.result.count == len(expected)


def test_an_exact_count_for_a_member_granted_row(region):
    check = "medical-two-cities"
    for owner, partner in (("beijing", "tianjin"), ("tianjin", "langfang")):
        plan = build_plan(check, owner=owner, partner=partner, mode="count")
        outcome = run_linkage(region.coordinator(EXACT), plan, purpose=CHECKS[check].purpose)
        assert outcome.result.exact and not outcome.result.matched_keys
        assert outcome.result.count == len(planted(region.truth, check, owner, partner))
        assert not outcome.result.owner_padded and not outcome.result.partner_padded


def test_a_count_under_match_is_noised_padded_and_charged(region):
    check = "deceased-pension"
    plan = build_plan(check, owner="tianjin", partner="beijing", mode="count")
    outcome = run_linkage(region.coordinator(PRIVATE), plan, purpose=CHECKS[check].purpose)
    result = outcome.result
    assert not result.exact and result.count_half_width_95 > 0
    assert result.owner_padded and result.partner_padded
    assert not result.matched_keys
    assert outcome.budget.epsilon_spent >= 1.0
    assert all(o.private for o in outcome.outcomes)


def test_a_spent_budget_refuses_the_linkage_before_anything_leaves(region):
    """Each linkage under `match` charges ε 1 at each city; the seventh finds the day's ε 6
    spent. The city that refuses says so; nothing of its set left it."""
    check = "medical-two-cities"
    for _ in range(7):
        plan = build_plan(check, owner="shijiazhuang", partner="baoding", mode="count")
        outcome = run_linkage(region.coordinator(PRIVATE), plan, purpose=CHECKS[check].purpose)
        if not outcome.complete:
            break
    assert not outcome.complete
    refused = [o for o in outcome.outcomes if o.status is CityStatus.REFUSED]
    assert refused and refused[0].code == "RESOURCE_EXHAUSTED", outcome.outcomes
    assert "budget" in refused[0].detail
    assert refused_in_audit(region, refused[0].city, PRIVATE, "PRIVACY_BUDGET_EXHAUSTED")
    assert outcome.traffic["partner→owner"] == 0 or refused[0].city == "shijiazhuang"


def test_reveal_to_owner_for_another_citys_records_is_refused_and_audited(region):
    plan = build_plan("deceased-pension", owner="tianjin", partner="beijing",
                      mode="reveal-to-owner")
    for asker in ("beijing", EXACT):
        outcome = run_linkage(region.coordinator(asker), plan_copy(plan),
                              purpose="pension-fraud-check")
        assert outcome.result is None
        statuses = {o.city: (o.status, o.code) for o in outcome.outcomes}
        assert statuses["tianjin"] == (CityStatus.REFUSED, "PERMISSION_DENIED")
        assert refused_in_audit(region, "tianjin", asker, "POLICY_DENIED")
        # The partner refuses on its own, too (the asker stops at the owner's refusal).
        with pytest.raises(grpc.RpcError) as refused:
            open_session(region, "beijing", plan_copy(plan), member=asker)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "only tianjin may ask it" in refused.value.details()
        assert refused_in_audit(region, "beijing", asker, "POLICY_DENIED")


def test_a_key_column_outside_the_grant_is_refused_and_audited(region):
    plan = plan_for(owner=side("tianjin", SideSpec("population", ("name",), "")),
                    partner=side("beijing", SideSpec("population", ("person_id",), "")),
                    mode="count")
    outcome = run_linkage(region.coordinator(PRIVATE), plan, purpose="pension-fraud-check")
    assert outcome.result is None
    tianjin = next(o for o in outcome.outcomes if o.city == "tianjin")
    assert (tianjin.status, tianjin.code) == (CityStatus.REFUSED, "PERMISSION_DENIED")
    assert "population.name needs match" in tianjin.detail
    assert refused_in_audit(region, "tianjin", PRIVATE, "POLICY_DENIED")


def test_a_replayed_linkage_is_refused_and_audited(region):
    plan = build_plan("bigamy", owner="baoding", partner="langfang", mode="count")
    first = run_linkage(region.coordinator(EXACT), plan, purpose="marriage-registry-check")
    assert first.complete
    again = run_linkage(region.coordinator(EXACT), plan, purpose="marriage-registry-check")
    assert again.result is None
    assert {o.code for o in again.outcomes} == {"PERMISSION_DENIED"}
    for city in ("baoding", "langfang"):
        assert refused_in_audit(region, city, EXACT, "LINKAGE_REPLAYED")


def open_session(region, city: str, plan: linkage_pb2.LinkagePlan, member: str = EXACT):
    """Open `city`'s side directly, as a member's own client would: its blinded set."""
    plan_bytes = plan.SerializeToString()
    stub = node_stub(region, city, member)
    token = token_for(region, city, plan_bytes, as_member=member, purpose="pension-fraud-check")
    responses = stub.OpenLinkage(node_pb2.OpenLinkageRequest(plan=plan_bytes),
                                 metadata=(("authorization", f"Bearer {token}"),), timeout=30)
    return stub, [r.message for r in responses]


def reblind(stub, messages):
    requests = (node_pb2.ReblindLinkageRequest(message=m) for m in messages)
    return [r.message for r in stub.ReblindLinkage(iter(list(requests)), timeout=30)]


def test_reblinding_only_the_counterparts_signed_set_once(region):
    """The partner re-blinds the owner's signed set of this linkage, once: not its own points,
    not another linkage's, not points the asker made up or signed itself, not a chunk twice,
    and not the whole set twice. A refused attempt ends the session."""
    asker = region.trusted.directory.open_as(EXACT)[1]

    def forged(owner_set):
        message = linkage_pb2.LinkageMessage()
        message.CopyFrom(owner_set[0])
        message.chunk.points = bytes(32) * 3 + message.chunk.points[96:]  # the asker's points
        return [message]

    def signed_by_the_asker(owner_set):
        message = linkage_pb2.LinkageMessage()
        message.CopyFrom(owner_set[0])
        sign(message.chunk, key=asker.signing_key, kid=asker.kid)
        return [message]

    def another_linkages(owner_set):
        plan = build_plan("deceased-pension", owner="tianjin", partner="beijing", mode="count")
        return owner_set[:1] + open_session(region, "tianjin", plan)[1][-1:]

    attempts = (
        (lambda owner_set, partner_set: partner_set, "expected blinded points of tianjin"),
        (lambda owner_set, _: another_linkages(owner_set), "another linkage"),
        (lambda owner_set, _: forged(owner_set), "signature"),
        (lambda owner_set, _: signed_by_the_asker(owner_set),
         "signed by a current key of tianjin"),
        (lambda owner_set, _: owner_set[:1] * 2, "expected chunk 1"),
    )
    for make, says in attempts:
        plan = build_plan("deceased-pension", owner="tianjin", partner="beijing", mode="count")
        _, owner_set = open_session(region, "tianjin", plan)
        partner, partner_set = open_session(region, "beijing", plan)
        with pytest.raises(grpc.RpcError) as refused:
            reblind(partner, make(owner_set, partner_set))
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert error_reason(refused.value) == "LINKAGE_REFUSED"
        assert says in refused.value.details()
        with pytest.raises(grpc.RpcError) as gone:
            reblind(partner, owner_set)
        assert gone.value.code() == grpc.StatusCode.NOT_FOUND
    assert refused_in_audit(region, "beijing", EXACT, "LINKAGE_REFUSED")

    plan = build_plan("deceased-pension", owner="tianjin", partner="beijing", mode="count")
    _, owner_set = open_session(region, "tianjin", plan)
    partner, _ = open_session(region, "beijing", plan)
    reblinded = reblind(partner, owner_set)
    assert reblinded[-1].summary.points == owner_set[-1].summary.points
    with pytest.raises(grpc.RpcError) as twice:
        reblind(partner, owner_set)
    assert twice.value.code() == grpc.StatusCode.NOT_FOUND  # the session ended with its pass


def test_outputs_are_shuffled_and_sessions_use_fresh_scalars(region):
    """The same set, opened twice: different points (fresh scalars), and a random order (the
    sorted key order would be the same both times)."""
    plan = build_plan("medical-two-cities", owner="langfang", partner="beijing", mode="count")
    _, first = open_session(region, "langfang", plan)
    _, second = open_session(region, "langfang", plan_copy(plan))
    points = [b"".join(m.chunk.points for m in run if m.HasField("chunk")) for run in (first,
                                                                                      second)]
    assert len(points[0]) == len(points[1]) > 32 * 100
    assert not set(split(points[0])) & set(split(points[1]))


def plan_copy(plan: linkage_pb2.LinkagePlan) -> linkage_pb2.LinkagePlan:
    """The same question under a fresh linkage id."""
    copy = build_plan(plan.check, owner=plan.owner.city, partner=plan.partner.city,
                      mode="count")
    copy.mode = plan.mode
    return copy


def split(points: bytes) -> list[bytes]:
    return [points[i:i + 32] for i in range(0, len(points), 32)]


def refused_in_audit(region, city: str, caller: str, reason: str) -> bool:
    records = read_records(region.directory / f"{city}.state" / "audit", caller=caller,
                           decision="refused")
    return any(r.get("reason", "").startswith(reason) for r in records)


def test_cityfed_match_prints_each_pair_and_what_each_party_learned(region, capsys):
    from cli.main import main as cityfed

    argv = ["match", "deceased-pension", "--all-pairs", "--mode", "reveal-to-owner", "--as",
            "tianjin", "--region", str(region.directory), "--json"]
    assert cityfed(argv) == 0
    results = json.loads(capsys.readouterr().out)
    assert [(r["owner"], r["partner"]) for r in results] == [
        ("tianjin", p) for p in CITIES if p != "tianjin"]
    for result in results:
        assert set(result["matched_keys"]) == planted(
            region.truth, "deceased-pension", "tianjin", result["partner"])
        assert {r["step"] for r in result["receipts"]} == {"open", "reblind", "finish"}
    assert cityfed(["match", "bigamy", "--owner", "beijing", "--partner", "baoding", "--as",
                    PRIVATE, "--region", str(region.directory)]) == 0
    said = capsys.readouterr().out
    assert "about" in said and "differentially private" in said
    assert "baoding learned the size of beijing's set" in said
    # A refusal is an incomplete answer (exit 3) naming the city and why.
    assert cityfed(["match", "bigamy", "--owner", "beijing", "--partner", "baoding", "--as",
                    OUTSIDER, "--region", str(region.directory)]) == 3
    assert "needs match" in capsys.readouterr().out


def test_federated_match_through_a_gateway(region):
    from federation.services.gateway import start_gateway
    from federation.trust.identity import channel_options

    manifest, identity = region.trusted.directory.open_as("langfang")
    gateway = start_gateway(manifest, identity, "127.0.0.1:0")
    try:
        channel = grpc.secure_channel(f"127.0.0.1:{gateway.port}",
                                      identity.channel_credentials(),
                                      options=channel_options("langfang", manifest.region))
        stub = federation_pb2_grpc.FederationServiceStub(channel)
        response = stub.FederatedMatch(federation_pb2.FederatedMatchRequest(
            check="medical-two-cities", owner="langfang", partner="beijing",
            mode=linkage_pb2.LINKAGE_MODE_REVEAL_TO_OWNER), timeout=60)
        assert set(response.result.matched_keys) == planted(
            region.truth, "medical-two-cities", "langfang", "beijing")
        assert [o.city for o in response.outcomes] == ["langfang", "beijing"]
        assert all(o.receipt for o in response.outcomes)
        assert len(response.plan.linkage_id) == 16
        with pytest.raises(grpc.RpcError) as refused:
            stub.FederatedMatch(federation_pb2.FederatedMatchRequest(
                check="no-such-check", owner="langfang", partner="beijing"), timeout=10)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        channel.close()
    finally:
        gateway.stop()
