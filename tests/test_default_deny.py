"""Deny by default: nothing is allowed that a rule of the owner's policy does not allow, and
nothing in a request can act as a grant (Datasette keeps a test file of this name)."""

from __future__ import annotations

import pytest
from cityfed.v1 import query_pb2

from federation.query.datasets import DATASETS
from node.policy import (
    Caller,
    Level,
    Policy,
    Rule,
    catalog_levels,
    column_level,
    decide,
    empty_policy,
)

A = query_pb2.AggregateFunction
F = query_pb2.Function

CALLERS = (
    Caller("beijing", "city"),
    Caller("hebei-health", "authority", ("authorities", "health")),
    Caller("*", "city", ("*",)),
    Caller("group:authorities", "authority"),
    Caller("", "authority"),
)
PURPOSES = ("transit-planning", "medical-settlement-statistics", "*", "")


def column(name: str) -> query_pb2.Expression:
    return query_pb2.Expression(column=name)


def literal(text: str) -> query_pb2.Expression:
    return query_pb2.Expression(literal=query_pb2.Value(string_value=text))


def call(function, *arguments) -> query_pb2.Expression:
    return query_pb2.Expression(call=query_pb2.Call(function=function, arguments=arguments))


def count_star(dataset: str, *, group_by: str | None = None,
               where: query_pb2.Expression | None = None) -> query_pb2.AggregatePlan:
    plan = query_pb2.AggregatePlan(
        dataset=dataset, aggregates=[query_pb2.Aggregate(function=A.AGGREGATE_FUNCTION_COUNT_STAR)])
    if group_by is not None:
        plan.group_by.append(column(group_by))
    if where is not None:
        plan.filter.CopyFrom(where)
    return plan


def rule(dataset="medical_visits", columns=("department",), callers=("hebei-health",),
         purposes=("medical-settlement-statistics",), level=Level.ROW) -> Rule:
    return Rule(dataset, tuple(columns), tuple(callers), tuple(purposes), level, "rule 1 (test)")


def policy_of(*rules: Rule) -> Policy:
    return Policy(rules=rules, source="test")


def test_an_empty_policy_denies_every_column_of_every_dataset_to_everyone():
    policy = empty_policy()
    for dataset in DATASETS.values():
        for caller in CALLERS:
            assert set(catalog_levels(policy, caller, None, dataset.name).values()) == {Level.DENY}
            for purpose in PURPOSES:
                levels = catalog_levels(policy, caller, purpose, dataset.name)
                assert levels == dict.fromkeys(dataset.column_names, Level.DENY)
                assert not decide(policy, caller, purpose, count_star(dataset.name)).allowed
                for name in dataset.column_names:
                    assert column_level(policy, caller, purpose, dataset.name, name) == (
                        Level.DENY, None)
                    decision = decide(policy, caller, purpose, count_star(dataset.name,
                                                                           group_by=name))
                    assert not decision.allowed
                    assert decision.columns[0].rule is None


def test_a_rule_grants_exactly_what_it_names():
    policy = policy_of(rule())
    caller = Caller("hebei-health", "authority")
    assert column_level(policy, caller, "medical-settlement-statistics", "medical_visits",
                        "department") == (Level.ROW, policy.rules[0])


@pytest.mark.parametrize(("caller", "purpose", "dataset", "name"), [
    pytest.param(Caller("beijing", "city"), "medical-settlement-statistics", "medical_visits",
                 "department", id="another caller"),
    pytest.param(Caller("hebei-health2", "authority"), "medical-settlement-statistics",
                 "medical_visits", "department", id="a caller whose id extends the id"),
    pytest.param(Caller("other", "authority", ("hebei-health",)), "medical-settlement-statistics",
                 "medical_visits", "department", id="a group named like the member"),
    pytest.param(Caller("hebei-health", "authority"), "transit-planning", "medical_visits",
                 "department", id="another purpose"),
    pytest.param(Caller("hebei-health", "authority"), "*", "medical_visits", "department",
                 id="purpose star in a request"),
    pytest.param(Caller("hebei-health", "authority"), "", "medical_visits", "department",
                 id="no purpose"),
    pytest.param(Caller("hebei-health", "authority"), "medical-settlement-statistics",
                 "medical_visits", "icd10", id="another column"),
])
def test_a_rule_for_one_caller_does_not_leak(caller, purpose, dataset, name):
    policy = policy_of(rule())
    assert column_level(policy, caller, purpose, dataset, name) == (Level.DENY, None)


def test_a_rule_on_one_dataset_does_not_leak_to_a_column_of_the_same_name_elsewhere():
    policy = policy_of(rule(columns=("card_city",)))
    caller = Caller("hebei-health", "authority")
    purpose = "medical-settlement-statistics"
    assert column_level(policy, caller, purpose, "medical_visits", "card_city")[0] is Level.ROW
    assert column_level(policy, caller, purpose, "transit_trips", "card_city") == (Level.DENY, None)
    assert not decide(policy, caller, purpose, count_star("transit_trips",
                                                          group_by="card_city")).allowed


def test_star_selectors_cover_what_they_say_and_nothing_more():
    policy = policy_of(rule(dataset="population", columns=("*",), callers=("*",),
                            purposes=("*",), level=Level.AGGREGATE))
    for caller in CALLERS:
        for purpose in ("transit-planning", "anything at all", "*"):
            for name in DATASETS["population"].column_names:
                assert column_level(policy, caller, purpose, "population", name)[0] is \
                    Level.AGGREGATE
            for other in ("social_insurance", "transit_trips", "medical_visits"):
                assert set(catalog_levels(policy, caller, purpose, other).values()) == {
                    Level.DENY}
        # A request without a purpose matches no rule, not even purposes = ["*"].
        assert column_level(policy, caller, "", "population", "sex") == (Level.DENY, None)


def test_group_and_role_selectors_match_only_membership():
    policy = policy_of(
        rule(callers=("group:authorities",), purposes=("*",)),
        rule(columns=("icd10",), callers=("role:authority",), purposes=("*",)),
    )
    member = Caller("hebei-health", "city", ("authorities",))
    assert column_level(policy, member, "p", "medical_visits", "department")[0] is Level.ROW
    assert column_level(policy, member, "p", "medical_visits", "icd10")[0] is Level.DENY
    for pretender in (Caller("authorities", "city"), Caller("group:authorities", "city"),
                      Caller("x", "city", ("group:authorities",)),
                      Caller("role:authority", "city"), Caller("x", "city", ("authority",))):
        for name in ("department", "icd10"):
            assert column_level(policy, pretender, "p", "medical_visits", name) == (
                Level.DENY, None)
    assert column_level(policy, Caller("x", "authority"), "p", "medical_visits", "icd10")[0] is \
        Level.ROW


def test_a_plan_cannot_name_its_way_to_a_grant():
    """Columns outside the dataset, columns of another dataset, and literals that look like
    selectors or levels are never read as grants, even under a policy granting everything."""
    everything = policy_of(*(rule(dataset=d, columns=("*",), callers=("*",), purposes=("*",))
                             for d in DATASETS))
    caller = Caller("beijing", "city")
    for name in ("icd10", "no_such_column", "*", "", "population.name"):
        decision = decide(everything, caller, "p", count_star("population", group_by=name))
        assert not decision.allowed
        assert decision.columns[0].granted is Level.DENY and decision.columns[0].rule is None
    # A dataset outside the standard ones is never granted, even by a rule naming it.
    secret = policy_of(rule(dataset="secret_table", columns=("*",), callers=("*",),
                            purposes=("*",)))
    assert not decide(secret, caller, "p", count_star("secret_table")).allowed
    assert not decide(secret, caller, "p", count_star("secret_table", group_by="x")).allowed


def test_literals_and_merged_references_do_not_change_a_decision():
    policy = policy_of(rule(dataset="population", columns=("district_code",), callers=("*",),
                            purposes=("*",), level=Level.AGGREGATE))
    caller = Caller("beijing", "city")
    plain = count_star("population", group_by="district_code")
    baseline = decide(policy, caller, "p", plain)
    assert baseline.allowed
    for text in ("*", "row", "group:authorities", "role:authority", "name", "deceased_on"):
        where = call(F.FUNCTION_EQUAL, column("district_code"), literal(text))
        decision = decide(policy, caller, "p", count_star("population", group_by="district_code",
                                                          where=where))
        assert decision.allowed and [c.column for c in decision.columns] == ["district_code"]
        assert decision.private == baseline.private
    # Post-merge references have no place in a node plan; they are not columns and grant nothing.
    odd = count_star("population")
    odd.group_by.append(query_pb2.Expression(group_key=0))
    odd.group_by.append(query_pb2.Expression(aggregate=0))
    odd.group_by.append(query_pb2.Expression())
    assert decide(policy, caller, "p", odd).columns == ()
    assert decide(empty_policy(), caller, "p", odd).allowed is False


def test_an_argument_on_count_star_still_counts_as_use():
    plan = count_star("population")
    plan.aggregates[0].argument.CopyFrom(column("name"))
    policy = policy_of(rule(dataset="population", columns=("district_code",), callers=("*",),
                            purposes=("*",), level=Level.AGGREGATE))
    decision = decide(policy, Caller("beijing", "city"), "p", plan)
    assert [c.column for c in decision.columns] == ["name"] and not decision.allowed
