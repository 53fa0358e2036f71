"""The owner's sharing policy: one test per rule of the issue, the file format, explain, the CLI,
a hypothesis property tying decide() to column_level(), and decide()'s speed."""

from __future__ import annotations

import argparse
import io
import random
import time
import timeit
from pathlib import Path

import pytest
from cityfed.v1 import query_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from cli.policy import EXIT_REFUSED, add_commands
from federation.errors import ConfigError
from federation.query.datasets import DATASETS
from federation.query.sql import parse_query
from node.policy import (
    ROLES,
    Caller,
    Level,
    Policy,
    Rule,
    catalog_levels,
    column_level,
    columns_used,
    decide,
    empty_policy,
    explain,
    load_policy,
)

A = query_pb2.AggregateFunction
F = query_pb2.Function

TIANJIN = """\
# Tianjin's sharing policy
[privacy]
epsilon_per_question = 0.5
epsilon_per_period = 5

[privacy.medical_visits]
max_rows_per_person = 4
bounds = { total_cost = [0, 50000] }

[[rules]]
dataset = "medical_visits"
columns = ["card_city", "visited_on", "department", "icd10", "total_cost", "insurance_paid",
           "hospital_id"]
callers = ["group:authorities"]
purposes = ["medical-settlement-statistics"]
level = "aggregate"
note = "Regional health commission: settlement statistics"

[[rules]]
dataset = "transit_trips"
columns = ["tapped_at", "district_code", "mode", "line", "card_city", "fare"]
callers = ["role:city"]
purposes = ["transit-planning"]
level = "aggregate"

[[rules]]
dataset = "population"
columns = ["*"]
callers = ["role:authority"]
purposes = ["population-statistics"]
level = "aggregate"
note = "Census-style statistics for the regional statistics bureau"

[[rules]]
dataset = "population"
columns = ["person_id"]
callers = ["group:pension-offices"]
purposes = ["pension-fraud-check"]
level = "match"
note = "Linkage only: identifiers are compared blinded and never leave"

[[rules]]
dataset = "population"
columns = ["name"]
callers = ["*"]
purposes = ["*"]
level = "deny"
note = "Names never leave Tianjin, whatever another rule says"

[[rules]]
dataset = "transit_trips"
columns = ["mode", "line"]
callers = ["*"]
purposes = ["*"]
level = "row"
note = "The network itself is public"
"""

AUTHORITY = Caller("jjj-health", "authority", ("authorities",))
BEIJING = Caller("beijing", "city")


@pytest.fixture
def tianjin(tmp_path) -> Policy:
    path = tmp_path / "tianjin.toml"
    path.write_text(TIANJIN)
    return load_policy(path)


def decide_sql(policy: Policy, caller: Caller, purpose: str, sql: str):
    return decide(policy, caller, purpose, parse_query(sql).plan)


def grant(dataset, columns, level, callers=("*",), purposes=("*",), number=1) -> Rule:
    return Rule(dataset, tuple(columns), tuple(callers), tuple(purposes), level,
                f"rule {number} (test.toml)")


def policy_of(*rules: Rule) -> Policy:
    return Policy(rules=rules, source="test.toml")


# One test per rule of the policy.


def test_a_denied_column_used_only_in_where_is_refused():
    policy = policy_of(grant("population", ["district_code"], Level.AGGREGATE))
    decision = decide_sql(policy, BEIJING, "p", "SELECT district_code, count(*) FROM population "
                          "WHERE deceased_on IS NULL GROUP BY district_code")
    assert not decision.allowed
    refused = decision.refused_column
    assert (refused.column, refused.clauses, refused.granted) == (
        "deceased_on", frozenset({"WHERE"}), Level.DENY)


def test_a_denied_column_used_only_in_group_by_is_refused():
    policy = policy_of(grant("population", ["district_code"], Level.AGGREGATE))
    decision = decide_sql(policy, BEIJING, "p",
                          "SELECT sex, count(*) FROM population GROUP BY sex")
    assert not decision.allowed
    assert decision.refused_column.column == "sex"
    assert decision.refused_column.clauses == frozenset({"GROUP BY"})


@pytest.mark.parametrize("aggregate", ["sum(total_cost)", "avg(total_cost - insurance_paid)",
                                       "count(total_cost)", "max(total_cost)"])
def test_a_denied_column_used_only_inside_an_aggregate_is_refused(aggregate):
    policy = policy_of(grant("medical_visits", ["department", "insurance_paid"], Level.AGGREGATE))
    decision = decide_sql(policy, BEIJING, "p",
                          f"SELECT department, {aggregate} FROM medical_visits GROUP BY department")
    assert not decision.allowed
    assert decision.refused_column.column == "total_cost"
    assert decision.refused_column.clauses == frozenset({"aggregate"})


@pytest.mark.parametrize("sql", [
    "SELECT count(person_id) FROM population",
    "SELECT count(*) FROM population WHERE person_id = '110101199003077777'",
    "SELECT person_id, count(*) FROM population GROUP BY person_id",
])
def test_a_match_level_column_is_refused_in_an_aggregate_plan(tianjin, sql):
    pension = Caller("tianjin-pension", "city", ("pension-offices",))
    assert column_level(tianjin, pension, "pension-fraud-check", "population", "person_id")[0] \
        is Level.MATCH
    decision = decide_sql(tianjin, pension, "pension-fraud-check", sql)
    assert not decision.allowed
    assert decision.refused_column.granted is Level.MATCH
    assert "only as a linkage key" in decision.refusal("tianjin")


def test_row_on_every_used_column_means_an_exact_answer():
    policy = policy_of(grant("transit_trips", ["mode", "line"], Level.ROW),
                       grant("transit_trips", ["fare"], Level.AGGREGATE))
    plain = decide_sql(policy, BEIJING, "p",
                       "SELECT mode, line, count(*) FROM transit_trips GROUP BY mode, line")
    assert plain.allowed and not plain.private
    with_fare = decide_sql(policy, BEIJING, "p",
                           "SELECT mode, sum(fare) FROM transit_trips GROUP BY mode")
    assert with_fare.allowed and with_fare.private


def test_privacy_settings_come_from_the_file_or_the_dataset_defaults(tianjin):
    privacy = tianjin.privacy
    assert (privacy.epsilon_per_question, privacy.epsilon_per_period) == (0.5, 5.0)
    assert (privacy.delta_per_question, privacy.period) == (1e-9, "day")
    medical = privacy.of("medical_visits")
    assert medical.max_rows_per_person == 4
    assert medical.bounds["total_cost"] == (0, 50000)
    assert medical.bounds["insurance_paid"] == DATASETS["medical_visits"].column(
        "insurance_paid").bounds
    assert privacy.of("population").max_rows_per_person == 1


def test_a_column_less_count_needs_an_aggregate_grant_on_some_column():
    sql = "SELECT count(*) FROM population"
    assert not decide_sql(empty_policy(), BEIJING, "p", sql).allowed
    match_only = policy_of(grant("population", ["person_id"], Level.MATCH))
    refused = decide_sql(match_only, BEIJING, "p", sql)
    assert not refused.allowed and refused.dataset_access is Level.MATCH
    assert refused.refusal("tianjin") == (
        "population needs aggregate on at least one column for purpose 'p'; tianjin grants "
        "beijing at most match on its columns")
    one = decide_sql(policy_of(grant("population", ["sex"], Level.AGGREGATE),
                               grant("population", ["district_code"], Level.ROW)),
                     BEIJING, "p", sql)
    assert one.allowed and one.columns == () and one.private
    every = decide_sql(policy_of(grant("population", ["*"], Level.ROW)), BEIJING, "p", sql)
    assert every.allowed and not every.private


def test_the_highest_grant_wins():
    policy = policy_of(
        grant("population", ["*"], Level.MATCH, number=1),
        grant("population", ["sex"], Level.ROW, callers=["beijing"], number=2),
        grant("population", ["sex", "district_code"], Level.AGGREGATE, number=3),
    )
    assert column_level(policy, BEIJING, "p", "population", "sex") == (Level.ROW,
                                                                        policy.rules[1])
    assert column_level(policy, AUTHORITY, "p", "population", "sex") == (Level.AGGREGATE,
                                                                          policy.rules[2])
    assert column_level(policy, BEIJING, "p", "population", "name") == (Level.MATCH,
                                                                         policy.rules[0])


def test_an_explicit_deny_wins_over_any_grant_in_any_order(tianjin):
    for caller, purpose in ((AUTHORITY, "population-statistics"), (BEIJING, "anything")):
        level, rule = column_level(tianjin, caller, purpose, "population", "name")
        assert level is Level.DENY and rule is tianjin.rules[4]
    # The grant on every other column of population still stands.
    assert column_level(tianjin, AUTHORITY, "population-statistics", "population",
                        "sex")[0] is Level.AGGREGATE
    grant_all = grant("medical_visits", ["*"], Level.ROW, number=1)
    deny_one = grant("medical_visits", ["icd10"], Level.DENY, callers=["role:city"], number=2)
    for rules in ((grant_all, deny_one), (deny_one, grant_all)):
        policy = policy_of(*rules)
        assert column_level(policy, BEIJING, "p", "medical_visits", "icd10") == (
            Level.DENY, deny_one)
        assert column_level(policy, AUTHORITY, "p", "medical_visits", "icd10")[0] is Level.ROW
        decision = decide_sql(policy, BEIJING, "p",
                              "SELECT icd10, count(*) FROM medical_visits GROUP BY icd10")
        assert not decision.allowed and "(explicit deny)" in decision.refusal()


def test_a_deny_for_another_purpose_does_not_apply():
    policy = policy_of(grant("population", ["sex"], Level.AGGREGATE),
                       grant("population", ["sex"], Level.DENY, purposes=["marketing"]))
    assert column_level(policy, BEIJING, "statistics", "population", "sex")[0] is Level.AGGREGATE
    assert column_level(policy, BEIJING, "marketing", "population", "sex")[0] is Level.DENY


def test_the_refusal_names_dataset_column_and_levels_and_no_data(tianjin):
    decision = decide_sql(
        tianjin, AUTHORITY, "population-statistics",
        "SELECT sex, count(*) FROM population WHERE name = 'Zhang San' "
        "AND person_id = '110101199003077777' AND birth_date < DATE '1960-03-07' GROUP BY sex")
    assert not decision.allowed
    message = decision.refusal("tianjin")
    assert message == ("population.name needs aggregate for purpose 'population-statistics'; "
                       "tianjin grants jjj-health deny (explicit deny)")
    default = decide_sql(tianjin, BEIJING, "x", "SELECT sex, count(*) FROM population "
                         "WHERE district_code = 'Zhang San' GROUP BY sex")
    assert default.refusal("tianjin") == ("population.district_code needs aggregate for purpose "
                                          "'x'; tianjin grants beijing deny (default)")
    for text in (message, explain(decision), default.refusal(), explain(default)):
        for value in ("Zhang San", "110101199003077777", "1960"):
            assert value not in text
    assert tianjin.source not in message  # the file path is the node's business


def test_refusal_of_an_allowed_decision_is_a_mistake(tianjin):
    decision = decide_sql(tianjin, BEIJING, "anything",
                          "SELECT mode, count(*) FROM transit_trips GROUP BY mode")
    assert decision.allowed
    with pytest.raises(ValueError):
        decision.refusal()


def test_a_request_without_a_purpose_gets_nothing(tianjin):
    decision = decide_sql(tianjin, BEIJING, "",
                          "SELECT mode, count(*) FROM transit_trips GROUP BY mode")
    assert not decision.allowed


def test_the_privacy_unit_is_a_person_or_an_anonymous_card():
    assert {name: DATASETS[name].entity for name in DATASETS} == {
        **dict.fromkeys(DATASETS, "person_id"), "marriages": "spouse1_id"}
    assert [d.entity_fallback for d in DATASETS.values() if d.entity_fallback] == ["card_id"]
    for dataset in DATASETS.values():
        entity = dataset.column(dataset.entity)
        assert entity is not None
        if dataset.entity_fallback:
            assert entity.nullable and not dataset.column(dataset.entity_fallback).nullable
        else:
            assert not entity.nullable


def test_columns_used_lists_every_column_in_first_use_order_with_its_clauses():
    plan = parse_query(
        "SELECT card_city, year(visited_on), count(*), sum(total_cost - insurance_paid) "
        "FROM medical_visits WHERE icd10 IN ('J18', 'I21') AND total_cost > 100 GROUP BY 1, 2"
    ).plan
    used = columns_used(plan)
    assert list(used) == ["icd10", "total_cost", "card_city", "visited_on", "insurance_paid"]
    assert used["total_cost"] == frozenset({"WHERE", "aggregate"})
    assert used["visited_on"] == frozenset({"GROUP BY"})


def test_catalog_levels_show_each_callers_best_level(tianjin):
    statistics = catalog_levels(tianjin, AUTHORITY, "population-statistics", "population")
    assert statistics["sex"] is Level.AGGREGATE and statistics["name"] is Level.DENY
    assert catalog_levels(tianjin, AUTHORITY, "other", "population")["sex"] is Level.DENY
    best = catalog_levels(tianjin, Caller("x", "authority", ("pension-offices",)), None,
                          "population")
    assert best["person_id"] is Level.AGGREGATE and best["name"] is Level.DENY
    transit = catalog_levels(tianjin, BEIJING, None, "transit_trips")
    assert transit["mode"] is Level.ROW and transit["fare"] is Level.AGGREGATE
    assert transit["card_id"] is Level.DENY and transit["station"] is Level.DENY
    assert catalog_levels(tianjin, BEIJING, None, "nope") == {}


# The policy file.


def test_the_example_policy_loads(tianjin, tmp_path):
    assert len(tianjin.rules) == 6
    first = tianjin.rules[0]
    assert first.label == f"rule 1 ({tmp_path / 'tianjin.toml'})"
    assert first.note == "Regional health commission: settlement statistics"
    assert first.level is Level.AGGREGATE and first.callers == ("group:authorities",)
    assert tianjin.privacy.of("medical_visits").max_rows_per_person == 4
    assert tianjin.source == str(tmp_path / "tianjin.toml")


RULE = """[[rules]]
dataset = "population"
columns = ["sex"]
callers = ["beijing"]
purposes = ["statistics"]
level = "aggregate"
"""


@pytest.mark.parametrize(("text", "says"), [
    (RULE + RULE.replace('"population"', '"populaton"'),
     "rule 2: unknown dataset 'populaton'; known datasets: population"),
    (RULE.replace('["sex"]', '["sex", "gender"]'),
     "rule 1: unknown column 'gender' in dataset population; its columns: person_id"),
    (RULE.replace('"aggregate"', '"aggregated"'),
     "rule 1: unknown level 'aggregated'; levels: deny, match, aggregate, row"),
    (RULE.replace('"aggregate"', '"ROW"'), "rule 1: unknown level 'ROW'"),
    ("[k]\npopulation = 10\n" + RULE, "[k] is gone"),
    ("[privacy]\nepsilon_per_question = 0\n", "'epsilon_per_question' must be above 0"),
    ("[privacy]\nepsilon_per_question = 2\nepsilon_per_period = 1\n",
     "'epsilon_per_period' must be at least epsilon_per_question"),
    ("[privacy]\ndelta_per_question = 0.1\n", "'delta_per_question' and 'delta_per_period'"),
    ("[privacy]\nperiod = 'year'\n", "'period' must be one of day, week, month"),
    ("[privacy]\nepsilon = 1\n", "[privacy] unknown key 'epsilon'"),
    ("[privacy.population]\nmax_rows_per_person = 0\n", "'max_rows_per_person' must be"),
    ("[privacy.medical_visits]\nbounds = { icd10 = [0, 1] }\n",
     "'icd10' is not a numeric column of medical_visits"),
    ("[privacy.medical_visits]\nbounds = { total_cost = [10, 1] }\n", "lower < upper"),
    ("[privacy.medical_visits]\nbounds = { total_cost = [0, 1e15] }\n", "lower < upper"),
    (RULE + 'colums = ["x"]\n', "rule 1: unknown key 'colums'; known keys: dataset, columns"),
    ("default_level = 'row'\n" + RULE, "unknown key 'default_level'"),
    (RULE.replace('level = "aggregate"\n', ""), "rule 1: missing key 'level'"),
    (RULE.replace('["beijing"]', '[]'), "rule 1: key 'callers' must not be empty"),
    (RULE.replace('["beijing"]', '"beijing"'), "rule 1: key 'callers' must be a list of strings"),
    (RULE.replace('["beijing"]', '["role:mayor"]'), "rule 1: caller 'role:mayor': the role"),
    (RULE.replace('["beijing"]', '["grp:authorities"]'),
     "rule 1: caller 'grp:authorities' must be a member id, 'group:<name>'"),
    (RULE.replace('["beijing"]', '["group:"]'), "rule 1: caller 'group:'"),
    (RULE.replace('["statistics"]', '[""]'), "rule 1: purpose '' must be a non-empty id"),
    (RULE + "note = 3\n", "rule 1: key 'note' must be a string"),
    ("rules = 3\n", "'rules' must be an array of tables"),
    ("[[rules]\n", "not valid TOML"),
])
def test_a_bad_policy_file_names_the_file_and_the_rule(tmp_path, text, says):
    path = tmp_path / "tianjin.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as refused:
        load_policy(path)
    assert str(refused.value).startswith(f"{path}: ")
    assert says in str(refused.value)


def test_a_missing_policy_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_policy(tmp_path / "absent.toml")


def test_a_file_with_no_rules_denies_everything(tmp_path):
    path = tmp_path / "empty.toml"
    path.write_text("# nothing shared yet\n")
    policy = load_policy(path)
    assert policy.rules == ()
    assert not decide_sql(policy, BEIJING, "p", "SELECT count(*) FROM population").allowed


# explain


def test_explain_lists_every_used_column_with_its_rule(tianjin, tmp_path):
    decision = decide_sql(
        tianjin, BEIJING, "transit-planning",
        "SELECT mode, hour(tapped_at), sum(fare), count(*) FROM transit_trips "
        "WHERE station <> 'Tianjin West' GROUP BY 1, 2")
    text = explain(decision)
    lines = text.splitlines()
    assert lines[0] == ("caller beijing (role city), purpose 'transit-planning', "
                        "dataset transit_trips")
    by_column = {line.split()[0]: line for line in lines[1:5]}
    assert list(by_column) == ["station", "mode", "tapped_at", "fare"]
    assert "REFUSED" in by_column["station"] and "no rule: denied by default" in by_column[
        "station"]
    source = tmp_path / "tianjin.toml"
    assert f"allowed by rule 6 ({source}): The network itself is public" in by_column["mode"]
    assert f"allowed by rule 2 ({source})" in by_column["tapped_at"]
    assert "WHERE" in by_column["station"] and "GROUP BY" in by_column["tapped_at"]
    assert "aggregate" in by_column["fare"].split("needs")[0]
    assert lines[5].startswith("answer: differentially private: each person_id (card_id where "
                               "it is empty) adds at most")
    assert lines[6] == ("verdict: REFUSED: transit_trips.station needs aggregate for purpose "
                        "'transit-planning'; this city grants beijing deny (default)")
    assert "Tianjin West" not in text


def test_explain_names_an_explicit_deny_and_a_match_grant(tianjin):
    pension = Caller("tianjin-pension", "city", ("pension-offices",))
    text = explain(decide_sql(tianjin, pension, "pension-fraud-check",
                              "SELECT count(*) FROM population WHERE name IS NOT NULL "
                              "AND person_id IS NOT NULL"))
    assert "explicitly denied by rule 5" in text and "Names never leave Tianjin" in text
    assert "only match by rule 4" in text
    allowed = explain(decide_sql(tianjin, BEIJING, "x", "SELECT mode, count(*) FROM "
                                 "transit_trips GROUP BY mode"))
    assert "answer: exact" in allowed and allowed.endswith("verdict: ALLOWED")
    counted = explain(decide_sql(tianjin, AUTHORITY, "population-statistics",
                                 "SELECT count(*) FROM population"))
    assert "no column used" in counted and counted.endswith("verdict: ALLOWED")


# The CLI (cli/main.py wires add_commands in; here a parser of its own runs it).


def run(*argv: str) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="cityfed")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    out, err = io.StringIO(), io.StringIO()
    return args.run(args, out, err), out.getvalue()


@pytest.fixture
def policy_file(tmp_path) -> Path:
    path = tmp_path / "tianjin.toml"
    path.write_text(TIANJIN)
    return path


def test_cli_explain_exits_0_when_allowed_and_4_when_refused(policy_file):
    code, out = run("policy", "explain", "--policy", str(policy_file), "--caller", "jjj-health",
                    "--role", "authority", "--groups", "authorities, analysts",
                    "--purpose", "medical-settlement-statistics",
                    "SELECT department, sum(total_cost) FROM medical_visits GROUP BY 1")
    assert code == 0 and out.rstrip().endswith("verdict: ALLOWED")
    assert "groups authorities, analysts" in out and "differentially private" in out
    code, out = run("policy", "explain", "--policy", str(policy_file), "--caller", "beijing",
                    "--purpose", "medical-settlement-statistics",
                    "SELECT department, sum(total_cost) FROM medical_visits GROUP BY 1")
    assert code == EXIT_REFUSED == 4 and "verdict: REFUSED: medical_visits.department" in out


def test_cli_explain_refuses_min_and_max_on_a_private_answer(policy_file):
    code, out = run("policy", "explain", "--policy", str(policy_file), "--caller", "jjj-health",
                    "--role", "authority", "--groups", "authorities",
                    "--purpose", "medical-settlement-statistics",
                    "SELECT department, max(total_cost) FROM medical_visits GROUP BY 1")
    assert code == EXIT_REFUSED
    assert out.rstrip().endswith("verdict: REFUSED: max() is refused in a private answer: it "
                                 "would release one person's exact value")


def test_cli_explain_refuses_sql_outside_the_subset(policy_file):
    from federation.errors import InvalidQuery
    with pytest.raises(InvalidQuery):
        run("policy", "explain", "--policy", str(policy_file), "--caller", "beijing",
            "--purpose", "p", "SELECT * FROM population")


def test_cli_check_lists_the_rules_and_the_privacy_settings(policy_file):
    code, out = run("policy", "check", str(policy_file))
    assert code == 0
    for word in ("group:authorities", "role:city", "pension-fraud-check", "Names never leave",
                 "privacy: ε 0.5 and δ 1e-09 per question", "per caller, purpose and day",
                 "medical_visits: at most 4 rows per person_id; bounds: total_cost [0, 50000]",
                 "valid, 6 rules"):
        assert word in out


def test_cli_check_reports_a_bad_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(RULE.replace('"aggregate"', '"everything"'))
    with pytest.raises(ConfigError, match="rule 1: unknown level 'everything'"):
        run("policy", "check", str(path))


# The property: decide() allows a plan exactly when every column it uses is granted at least
# aggregate, whatever the rules; it never raises; and the order of the rules does not matter.

IDS = ("beijing", "tianjin", "jjj-health", "*x")
GROUPS = ("authorities", "pension-offices")
SELECTORS = (*IDS, "*", *(f"group:{g}" for g in GROUPS), *(f"role:{r}" for r in ROLES))
PURPOSE_IDS = ("statistics", "transit-planning", "fraud")
STRANGE_COLUMNS = ("no_such_column", "icd10", "*", "")


@st.composite
def rules(draw, dataset: str) -> Rule:
    names = DATASETS[dataset].column_names
    return Rule(
        dataset=draw(st.sampled_from(sorted(DATASETS))) if draw(st.booleans()) and draw(
            st.booleans()) else dataset,
        columns=("*",) if draw(st.integers(0, 4)) == 0 else tuple(
            draw(st.lists(st.sampled_from(names), min_size=1, max_size=4))),
        callers=tuple(draw(st.lists(st.sampled_from(SELECTORS), min_size=1, max_size=3))),
        purposes=tuple(draw(st.lists(st.sampled_from((*PURPOSE_IDS, "*")), min_size=1,
                                     max_size=2))),
        level=draw(st.sampled_from(Level)),
        label=f"rule {draw(st.integers(1, 99))} (prop.toml)",
    )


@st.composite
def expressions(draw, names: tuple[str, ...], depth: int = 0) -> query_pb2.Expression:
    choice = draw(st.integers(0, 3 if depth < 3 else 1))
    if choice == 0:
        return query_pb2.Expression(column=draw(st.sampled_from(names)))
    if choice == 1:
        return query_pb2.Expression(literal=query_pb2.Value(
            string_value=f"lit-{draw(st.integers(0, 999))}"))
    function = draw(st.sampled_from((F.FUNCTION_EQUAL, F.FUNCTION_AND, F.FUNCTION_ADD,
                                     F.FUNCTION_IN, F.FUNCTION_YEAR)))
    arguments = draw(st.lists(expressions(names, depth + 1), min_size=1, max_size=3))
    return query_pb2.Expression(call=query_pb2.Call(function=function, arguments=arguments))


@st.composite
def plans(draw, dataset: str) -> query_pb2.AggregatePlan:
    names = DATASETS[dataset].column_names
    if draw(st.integers(0, 9)) == 0:
        names = (*names, *STRANGE_COLUMNS)
    plan = query_pb2.AggregatePlan(dataset=dataset)
    if draw(st.booleans()):
        plan.filter.CopyFrom(draw(expressions(names)))
    plan.group_by.extend(draw(st.lists(expressions(names), max_size=3)))
    for _ in range(draw(st.integers(1, 3))):
        function = draw(st.sampled_from((A.AGGREGATE_FUNCTION_COUNT_STAR, A.AGGREGATE_FUNCTION_SUM,
                                         A.AGGREGATE_FUNCTION_MIN)))
        aggregate = plan.aggregates.add(function=function)
        if function != A.AGGREGATE_FUNCTION_COUNT_STAR:
            aggregate.argument.CopyFrom(draw(expressions(names)))
    return plan


def reference_level(rule_list, caller: Caller, purpose: str, dataset: str, column: str) -> Level:
    """The semantics of docs/policy.md, written as plainly as possible."""
    if column not in DATASETS[dataset].column_names or not purpose:
        return Level.DENY
    matching = [
        r.level for r in rule_list
        if r.dataset == dataset and ("*" in r.columns or column in r.columns)
        and ("*" in r.purposes or purpose in r.purposes)
        and ("*" in r.callers or caller.id in r.callers or f"role:{caller.role}" in r.callers
             or any(f"group:{g}" in r.callers for g in caller.groups))
    ]
    if Level.DENY in matching:
        return Level.DENY
    return max(matching, default=Level.DENY)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), dataset=st.sampled_from(sorted(DATASETS)))
def test_decide_allows_a_plan_iff_every_used_column_is_granted_aggregate(data, dataset):
    rule_list = data.draw(st.lists(rules(dataset), max_size=8))
    caller = Caller(data.draw(st.sampled_from(IDS)), data.draw(st.sampled_from(ROLES)),
                    tuple(data.draw(st.lists(st.sampled_from(GROUPS), max_size=2))))
    purpose = data.draw(st.sampled_from((*PURPOSE_IDS, "")))
    plan = data.draw(plans(dataset))
    policy = policy_of(*rule_list)

    decision = decide(policy, caller, purpose, plan)

    used = columns_used(plan)
    levels = {c: column_level(policy, caller, purpose, dataset, c)[0] for c in used}
    assert levels == {c: reference_level(rule_list, caller, purpose, dataset, c) for c in used}
    every = [reference_level(rule_list, caller, purpose, dataset, c)
             for c in DATASETS[dataset].column_names]
    if used:
        assert decision.allowed == all(lv >= Level.AGGREGATE for lv in levels.values())
        assert (not decision.private) == all(lv is Level.ROW for lv in levels.values())
    else:
        assert decision.allowed == (max(every) >= Level.AGGREGATE)
        assert (not decision.private) == all(lv is Level.ROW for lv in every)
    assert [c.column for c in decision.columns] == list(used)

    shuffled = list(rule_list)
    random.Random(len(rule_list)).shuffle(shuffled)
    again = decide(policy_of(*shuffled), caller, purpose, plan)
    assert again.allowed == decision.allowed and again.private == decision.private
    assert [c.granted for c in again.columns] == [c.granted for c in decision.columns]

    text = explain(decision)
    if not decision.allowed:
        text += decision.refusal()
    assert "lit-" not in text


# Speed: decide() runs on every request, before the store is touched.


def test_decide_takes_well_under_100_microseconds(tianjin, record_property):
    plan = parse_query(
        "SELECT card_city, year(visited_on), department, count(*), sum(total_cost), "
        "avg(insurance_paid) FROM medical_visits WHERE visited_on BETWEEN DATE '2024-01-01' "
        "AND DATE '2024-12-31' AND icd10 IN ('J18', 'I21') AND hospital_id <> 'H1' "
        "GROUP BY 1, 2, 3").plan
    purpose = "medical-settlement-statistics"
    assert decide(tianjin, AUTHORITY, purpose, plan).allowed
    calls = 2_000
    # CPU time of this process, so that other processes on a busy machine do not count.
    clock = time.process_time
    warm = min(timeit.repeat(lambda: decide(tianjin, AUTHORITY, purpose, plan), timer=clock,
                             number=calls, repeat=5)) / calls * 1e6
    callers = [Caller(f"member-{i}", "authority", ("authorities",)) for i in range(calls)]
    cold = float("inf")
    for _ in range(3):  # a new caller each call, on a policy with nothing cached yet
        fresh = Policy(tianjin.rules, tianjin.source, tianjin.privacy)
        cold = min(cold, timeit.timeit(lambda f=fresh: [decide(f, c, purpose, plan)
                                                        for c in callers], timer=clock, number=1))
    cold = cold / calls * 1e6
    record_property("decide_us", round(warm, 1))
    print(f"decide(): {warm:.1f} µs with the caller's view cached, {cold:.1f} µs for a new "
          f"caller (7 columns, 18 expression nodes, 6 rules)")
    assert warm < 100 and cold < 200
