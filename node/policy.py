"""The data owner's sharing policy: what each caller may do with each column, for each purpose.

A policy is a list of rules read from the node's TOML policy file. Each rule names a dataset,
columns, callers and purposes, and grants one level: deny, match (a linkage key only), aggregate
(differentially private statistics) or row. Nothing is allowed unless a rule allows it, and an
explicit deny beats any grant. `decide` reads only the caller (established by TLS and the
token), the purpose (from the signed token) and which columns the plan uses: nothing in a plan
can act as a grant. The policy's `[privacy]` table says how private answers are made: ε and δ
per question and per period, rows per person and clamping bounds per dataset. See
docs/policy.md.
"""

from __future__ import annotations

import math
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import IntEnum
from pathlib import Path
from typing import Any

from cityfed.v1 import query_pb2

from federation.config_files import read_toml
from federation.errors import ConfigError
from federation.query.compile import expression_nodes
from federation.query.datasets import DATASETS

ANY = "*"
ROLES = ("city", "authority")
WHERE, GROUP_BY, AGGREGATE = "WHERE", "GROUP BY", "aggregate"
_CLAUSE_ORDER = (WHERE, GROUP_BY, AGGREGATE)
_RULE_KEYS = ("dataset", "columns", "callers", "purposes", "level", "note")
_MAX_SHOWN = 64  # caller-supplied names are clipped to this many characters in messages
PERIODS = ("day", "week", "month")
_PRIVACY_KEYS = ("epsilon_per_question", "delta_per_question", "epsilon_per_period",
                 "delta_per_period", "period")
_DATASET_PRIVACY_KEYS = ("max_rows_per_person", "bounds")
MAX_EPSILON_PER_QUESTION = 10.0
MAX_DELTA = 1e-3
MAX_BOUND = 10**12  # clamped values are summed as DECIMAL(18, up to 6 places)
_ORDER_STATISTICS = (query_pb2.AggregateFunction.AGGREGATE_FUNCTION_MIN,
                     query_pb2.AggregateFunction.AGGREGATE_FUNCTION_MAX)


class Level(IntEnum):
    """What a caller may do with a column, least first; a higher level includes the lower."""

    DENY = 0
    MATCH = 1
    AGGREGATE = 2
    ROW = 3

    @property
    def keyword(self) -> str:
        """The word used for this level in policy files and messages."""
        return self.name.lower()


@dataclass(frozen=True)
class Caller:
    """Who is asking, as established by mutual TLS and the verified token, never by a request."""

    id: str
    role: str
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rule:
    dataset: str
    columns: tuple[str, ...]  # column names, or ("*",) for every column of the dataset
    callers: tuple[str, ...]  # member ids, "group:<name>", "role:<city|authority>", or "*"
    purposes: tuple[str, ...]  # purpose ids, or ("*",) for any stated purpose
    level: Level
    label: str  # how explain names the rule, e.g. "rule 3 (policies/tianjin.toml)"
    note: str = ""  # the owner's own words for why the rule exists


@dataclass(frozen=True, slots=True)
class _Matcher:
    """A rule's selectors as sets, so matching a caller is a few set lookups."""

    rule: Rule
    level: Level
    any_caller: bool
    ids: frozenset[str]
    groups: frozenset[str]
    roles: frozenset[str]
    any_purpose: bool
    purposes: frozenset[str]

    @classmethod
    def of(cls, rule: Rule) -> _Matcher:
        ids, groups, roles = set(), set(), set()
        for selector in rule.callers:
            kind, colon, name = selector.partition(":")
            if selector == ANY:
                continue
            if not colon:
                ids.add(selector)  # a member id never holds a colon, so no id matches "group:x"
            elif kind == "group":
                groups.add(name)
            elif kind == "role":
                roles.add(name)
            # any other "kind:" matches nobody (load_policy refuses it)
        return cls(rule, Level(rule.level), ANY in rule.callers, frozenset(ids), frozenset(groups),
                   frozenset(roles), ANY in rule.purposes,
                   frozenset(p for p in rule.purposes if p != ANY))

    def matches(self, caller: Caller, purpose: str) -> bool:
        if not (self.any_purpose or purpose in self.purposes):
            return False
        return (self.any_caller or caller.id in self.ids or caller.role in self.roles
                or not self.groups.isdisjoint(caller.groups))


@dataclass(frozen=True)
class DatasetPrivacy:
    """How one dataset's private answers bound each person's contribution."""

    max_rows_per_person: int
    bounds: Mapping[str, tuple[Decimal, Decimal]]  # numeric column -> (lower, upper) clamp


@dataclass(frozen=True)
class PrivacySettings:
    """The owner's differential-privacy parameters (docs/policy.md)."""

    epsilon_per_question: float = 1.0
    delta_per_question: float = 1e-9  # well below one over a city's population
    epsilon_per_period: float = 10.0  # per caller and purpose
    delta_per_period: float = 1e-6
    period: str = "day"  # UTC day, ISO week or calendar month
    datasets: Mapping[str, DatasetPrivacy] = field(default_factory=dict)

    def __post_init__(self) -> None:
        defaults = {
            name: DatasetPrivacy(d.max_rows_per_person, types.MappingProxyType(
                {c.name: c.bounds for c in d.columns if c.bounds is not None}))
            for name, d in DATASETS.items()}
        object.__setattr__(self, "datasets",
                           types.MappingProxyType({**defaults, **self.datasets}))

    def of(self, dataset: str) -> DatasetPrivacy:
        return self.datasets[dataset]


@dataclass(frozen=True)
class Policy:
    rules: tuple[Rule, ...]
    source: str  # the file the policy came from, for messages
    privacy: PrivacySettings = field(default_factory=PrivacySettings)
    # (dataset, column) -> matchers of the rules that name that column, in file order. Only
    # columns of the standard datasets are indexed, so no rule can grant anything else.
    _index: dict[tuple[str, str], tuple[_Matcher, ...]] = field(
        init=False, repr=False, compare=False)
    # (caller, purpose, dataset) -> that caller's view of the dataset; see _view.
    _views: dict[tuple[Caller, str, str], _View] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index: dict[tuple[str, str], list[_Matcher]] = {}
        for rule in self.rules:
            dataset = DATASETS.get(rule.dataset)
            if dataset is None:
                continue
            matcher = _Matcher.of(rule)
            for column in dataset.column_names:
                if ANY in rule.columns or column in rule.columns:
                    index.setdefault((dataset.name, column), []).append(matcher)
        object.__setattr__(self, "_index", {key: tuple(m) for key, m in index.items()})
        object.__setattr__(self, "_views", {})


def empty_policy() -> Policy:
    """A policy with no rules: every column of every dataset is denied to everyone."""
    return Policy(rules=(), source="(no policy)")


def column_level(policy: Policy, caller: Caller, purpose: str, dataset: str,
                 column: str) -> tuple[Level, Rule | None]:
    """The level this caller has on a column for a purpose, and the rule that decides it.

    The highest level among matching rules, except that a matching `deny` rule wins over every
    grant (the first such rule in the file is returned). No matching rule: DENY and None. A
    request that states no purpose matches no rule.
    """
    if not purpose:
        return Level.DENY, None
    best, best_rule = Level.DENY, None
    for matcher in policy._index.get((dataset, column), ()):
        if not matcher.matches(caller, purpose):
            continue
        level = matcher.level
        if level is Level.DENY:
            return Level.DENY, matcher.rule
        if level > best:
            best, best_rule = level, matcher.rule
    return best, best_rule


@dataclass(frozen=True, slots=True)
class _View:
    """One caller's levels on every column of a dataset, for one purpose."""

    levels: dict[str, tuple[Level, Rule | None]]
    best: Level  # the highest level on any column
    all_row: bool  # ROW on every column (False for an unknown dataset)


_MAX_VIEWS = 4096


def _view(policy: Policy, caller: Caller, purpose: str, dataset: str) -> _View:
    """Cached: a policy never changes, so a caller's view of it never does either."""
    key = (caller, purpose, dataset)
    view = policy._views.get(key)
    if view is None:
        known = DATASETS.get(dataset)
        names = known.column_names if known else ()
        levels = {c: column_level(policy, caller, purpose, dataset, c) for c in names}
        view = _View(levels, max((lv for lv, _ in levels.values()), default=Level.DENY),
                     bool(levels) and all(lv is Level.ROW for lv, _ in levels.values()))
        if len(policy._views) >= _MAX_VIEWS:
            policy._views.clear()
        policy._views[key] = view
    return view


def catalog_levels(policy: Policy, caller: Caller, purpose: str | None,
                   dataset: str) -> dict[str, Level]:
    """What this caller may do with each column of a dataset, for the catalog.

    With no purpose: the best level over every purpose the policy's rules name (and over the
    rules that accept any purpose).
    """
    known = DATASETS.get(dataset)
    if known is None:
        return {}
    if purpose is not None:
        return {c: column_level(policy, caller, purpose, dataset, c)[0]
                for c in known.column_names}
    named = {p for r in policy.rules if r.dataset == dataset for p in r.purposes if p != ANY}
    unnamed = "\x00a purpose no rule names"
    return {
        c: max((column_level(policy, caller, p, dataset, c)[0] for p in (*named, unnamed)),
               default=Level.DENY)
        for c in known.column_names
    }


# Deciding on a plan.


def columns_used(plan: query_pb2.AggregatePlan) -> dict[str, frozenset[str]]:
    """Every column a plan refers to, in first-use order, with the clauses it is used in."""
    used: dict[str, set[str]] = {}
    roots: list[tuple[query_pb2.Expression, str]] = []
    if plan.HasField("filter"):
        roots.append((plan.filter, WHERE))
    roots.extend((key, GROUP_BY) for key in plan.group_by)
    # An argument is read even where the function takes none (count(*)): anything a plan
    # names counts as use.
    roots.extend((a.argument, AGGREGATE) for a in plan.aggregates if a.HasField("argument"))
    for root, clause in roots:
        for node in expression_nodes(root):
            if node.WhichOneof("kind") == "column":
                used.setdefault(node.column, set()).add(clause)
    return {column: frozenset(clauses) for column, clauses in used.items()}


@dataclass(frozen=True)
class ColumnDecision:
    column: str
    clauses: frozenset[str]
    needed: Level  # AGGREGATE for every use in an aggregate plan
    granted: Level
    rule: Rule | None  # the rule that granted (or explicitly denied) it; None: default deny

    @property
    def allowed(self) -> bool:
        return self.granted >= self.needed


@dataclass(frozen=True)
class Decision:
    dataset: str
    caller: Caller
    purpose: str
    columns: tuple[ColumnDecision, ...]  # in first-use order
    dataset_access: Level  # the caller's best level on any column of the dataset
    # True when the answer must be differentially private: some column used (or, with none
    # used, some column of the dataset) is granted less than row.
    private: bool
    # min and max in the plan: refused (INVALID_ARGUMENT) when the answer is private.
    order_statistics: tuple[str, ...] = ()

    @property
    def answerable(self) -> bool:
        """Allowed, and nothing in the plan a private answer refuses."""
        return self.allowed and not (self.private and self.order_statistics)

    @property
    def allowed(self) -> bool:
        if not self.columns:
            return self.dataset_access >= Level.AGGREGATE
        return all(c.allowed for c in self.columns)

    @property
    def refused_column(self) -> ColumnDecision | None:
        return next((c for c in self.columns if not c.allowed), None)

    def refusal(self, owner: str = "this city") -> str:
        """The PERMISSION_DENIED message: dataset, column and levels, never any data."""
        if self.allowed:
            raise ValueError("the decision allows the plan; there is nothing to refuse")
        dataset, purpose = self.dataset[:_MAX_SHOWN], self.purpose[:_MAX_SHOWN]
        column = self.refused_column
        if column is None:
            return (f"{dataset} needs {Level.AGGREGATE.keyword} on at least one column for "
                    f"purpose {purpose!r}; {owner} grants {self.caller.id} at most "
                    f"{self.dataset_access.keyword} on its columns")
        return (f"{dataset}.{column.column[:_MAX_SHOWN]} needs {column.needed.keyword} for "
                f"purpose {purpose!r}; {owner} grants {self.caller.id} "
                f"{column.granted.keyword} ({_why(column)})")


def _why(column: ColumnDecision) -> str:
    if column.rule is None:
        return "default"
    if column.rule.level is Level.DENY:
        return "explicit deny"
    if column.granted is Level.MATCH:
        return "only as a linkage key"
    return "granted"


def decide(policy: Policy, caller: Caller, purpose: str,
           plan: query_pb2.AggregatePlan) -> Decision:
    """Whether this caller may run this aggregate plan for this purpose, column by column.

    Pure: reads the policy, the authenticated caller, the purpose and the columns the plan
    names. A column that is not in the plan's dataset (or a dataset that is not standard) is
    never granted. Never raises on a well-formed protobuf message.
    """
    dataset = plan.dataset
    view = _view(policy, caller, purpose, dataset)
    denied = (Level.DENY, None)  # a name that is not a column of the dataset
    columns = tuple(
        ColumnDecision(name, clauses, Level.AGGREGATE, *view.levels.get(name, denied))
        for name, clauses in columns_used(plan).items()
    )
    exact = all(c.granted is Level.ROW for c in columns) if columns else view.all_row
    order_statistics = tuple(
        query_pb2.AggregateFunction.Name(a.function).removeprefix("AGGREGATE_FUNCTION_").lower()
        for a in plan.aggregates if a.function in _ORDER_STATISTICS)
    return Decision(dataset=dataset, caller=caller, purpose=purpose, columns=columns,
                    dataset_access=view.best, private=not exact,
                    order_statistics=order_statistics)


def explain(decision: Decision) -> str:
    """A person's account of a decision: one line per column with the rule behind it, then
    the k that applies and the verdict."""
    caller = decision.caller
    groups = f", groups {', '.join(caller.groups)}" if caller.groups else ""
    lines = [f"caller {caller.id} (role {caller.role}{groups}), purpose {decision.purpose!r}, "
             f"dataset {decision.dataset}"]
    if decision.columns:
        uses = [", ".join(x for x in _CLAUSE_ORDER if x in c.clauses) for c in decision.columns]
        width = max(len(c.column) for c in decision.columns)
        used_width = max(len(u) for u in uses)
        for c, clauses in zip(decision.columns, uses, strict=True):
            lines.append(
                f"  {c.column:<{width}}  {clauses:<{used_width}}  needs {c.needed.keyword:<9}  "
                f"granted {c.granted.keyword:<9}  {'ALLOWED' if c.allowed else 'REFUSED'}  "
                f"{_rule_text(c)}")
    else:
        verdict = "ALLOWED" if decision.dataset_access >= Level.AGGREGATE else "REFUSED"
        lines.append(f"  no column used (count(*) only): needs aggregate on some column; best "
                     f"granted {decision.dataset_access.keyword}  {verdict}")
    if not decision.private:
        lines.append("answer: exact: every column used is granted row")
    else:
        known = DATASETS.get(decision.dataset)
        who = known.unit_name if known else "person"
        lines.append(f"answer: differentially private: each {who} adds at most a bounded number "
                     "of rows, values are clamped, noise is added and groups are released by a "
                     "noisy threshold; min and max are refused")
    if decision.allowed and not decision.answerable:
        lines.append(f"verdict: REFUSED: {decision.order_statistics[0]}() is refused in a "
                     "private answer: it would release one person's exact value")
    elif decision.allowed:
        lines.append("verdict: ALLOWED")
    else:
        lines.append(f"verdict: REFUSED: {decision.refusal()}")
    return "\n".join(lines)


def _rule_text(column: ColumnDecision) -> str:
    rule = column.rule
    if rule is None:
        return "no rule: denied by default"
    text = f"{rule.label}: {rule.note}" if rule.note else rule.label
    if rule.level is Level.DENY:
        return f"explicitly denied by {text}"
    if not column.allowed:
        return f"only {rule.level.keyword} by {text}"
    return f"allowed by {text}"


# Loading a policy file.


def load_policy(path: Path) -> Policy:
    """Read and check a TOML policy file; every error names the file and the rule or key."""
    table = read_toml(path)
    if "k" in table:
        raise ConfigError(f"{path}: [k] is gone: groups are no longer released by a minimum size "
                          "but by differential privacy; set [privacy] instead (docs/policy.md)")
    unknown = sorted(set(table) - {"privacy", "rules"})
    if unknown:
        raise ConfigError(f"{path}: unknown key {unknown[0]!r}; a policy has 'privacy' and "
                          "'rules'")
    privacy = _load_privacy(table.get("privacy", {}), path)
    rules = table.get("rules", [])
    if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
        raise ConfigError(f"{path}: 'rules' must be an array of tables ([[rules]])")
    return Policy(
        rules=tuple(_load_rule(entry, number, path)
                    for number, entry in enumerate(rules, start=1)),
        source=str(path), privacy=privacy)


def _load_privacy(table: Any, path: Path) -> PrivacySettings:
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: 'privacy' must be a table ([privacy])")
    settings: dict[str, Any] = {}
    datasets: dict[str, DatasetPrivacy] = {}
    for key, value in table.items():
        if key in DATASETS:
            datasets[key] = _load_dataset_privacy(key, value, path)
        elif key in _PRIVACY_KEYS:
            settings[key] = value
        else:
            raise ConfigError(f"{path}: [privacy] unknown key {key!r}; known keys: "
                              f"{', '.join(_PRIVACY_KEYS)}, or a dataset name")
    for key in _PRIVACY_KEYS[:-1]:
        if key in settings:
            value = settings[key]
            if isinstance(value, bool) or not isinstance(value, int | float) \
                    or not math.isfinite(value):
                raise ConfigError(f"{path}: [privacy] key {key!r} must be a number")
            settings[key] = float(value)
    privacy = PrivacySettings(**settings, datasets=datasets)
    where = f"{path}: [privacy]"
    if not 0 < privacy.epsilon_per_question <= MAX_EPSILON_PER_QUESTION:
        raise ConfigError(f"{where} key 'epsilon_per_question' must be above 0 and at most "
                          f"{MAX_EPSILON_PER_QUESTION:g}")
    if not privacy.epsilon_per_question <= privacy.epsilon_per_period:
        raise ConfigError(f"{where} key 'epsilon_per_period' must be at least "
                          "epsilon_per_question")
    if not 0 < privacy.delta_per_question <= privacy.delta_per_period <= MAX_DELTA:
        raise ConfigError(f"{where} keys 'delta_per_question' and 'delta_per_period' must be "
                          f"above 0, per question at most per period, and at most {MAX_DELTA:g}")
    if privacy.period not in PERIODS:
        raise ConfigError(f"{where} key 'period' must be one of {', '.join(PERIODS)}")
    return privacy


def _load_dataset_privacy(name: str, table: Any, path: Path) -> DatasetPrivacy:
    where = f"{path}: [privacy.{name}]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = sorted(set(table) - set(_DATASET_PRIVACY_KEYS))
    if unknown:
        raise ConfigError(f"{where} unknown key {unknown[0]!r}; known keys: "
                          f"{', '.join(_DATASET_PRIVACY_KEYS)}")
    dataset = DATASETS[name]
    rows = table.get("max_rows_per_person", dataset.max_rows_per_person)
    if isinstance(rows, bool) or not isinstance(rows, int) or not 1 <= rows <= 100_000:
        raise ConfigError(f"{where} key 'max_rows_per_person' must be an integer from 1 to "
                          "100000")
    bounds = {c.name: c.bounds for c in dataset.columns if c.bounds is not None}
    given = table.get("bounds", {})
    if not isinstance(given, dict):
        raise ConfigError(f"{where} key 'bounds' must be a table of column = [lower, upper]")
    for column, pair in given.items():
        known = dataset.column(column)
        if known is None or not known.type.startswith("DECIMAL"):
            numeric = ", ".join(c.name for c in dataset.columns if c.type.startswith("DECIMAL"))
            raise ConfigError(f"{where} bounds: {column!r} is not a numeric column of {name}; "
                              f"its numeric columns: {numeric or 'none'}")
        bounds[column] = _bound_pair(pair, f"{where} bounds.{column}")
    return DatasetPrivacy(rows, types.MappingProxyType(bounds))


def _bound_pair(pair: Any, where: str) -> tuple[Decimal, Decimal]:
    if not isinstance(pair, list) or len(pair) != 2:
        raise ConfigError(f"{where} must be [lower, upper]")
    try:
        lower, upper = (Decimal(str(v)) for v in pair
                        if not isinstance(v, bool) and isinstance(v, int | float | str))
    except (ValueError, InvalidOperation):
        raise ConfigError(f"{where} must be two numbers [lower, upper]") from None
    if not (lower.is_finite() and upper.is_finite() and lower < upper
            and max(abs(lower), abs(upper)) <= MAX_BOUND):
        raise ConfigError(f"{where} must be two numbers with lower < upper, each at most "
                          f"{MAX_BOUND:,} in size")
    return lower, upper


def _load_rule(entry: dict[str, Any], number: int, path: Path) -> Rule:
    where = f"{path}: rule {number}"
    unknown = sorted(set(entry) - set(_RULE_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; known keys: "
                          f"{', '.join(_RULE_KEYS)}")
    for key in _RULE_KEYS[:-1]:
        if key not in entry:
            raise ConfigError(f"{where}: missing key {key!r}")

    name = entry["dataset"]
    dataset = DATASETS.get(name) if isinstance(name, str) else None
    if dataset is None:
        raise ConfigError(f"{where}: unknown dataset {name!r}; known datasets: "
                          f"{', '.join(DATASETS)}")
    columns = _strings(entry, "columns", where)
    for column in columns:
        if column != ANY and dataset.column(column) is None:
            raise ConfigError(f"{where}: unknown column {column!r} in dataset {name}; its "
                              f"columns: {', '.join(dataset.column_names)}")
    callers = _strings(entry, "callers", where)
    for selector in callers:
        _check_selector(selector, where)
    purposes = _strings(entry, "purposes", where)
    for purpose in purposes:
        if not purpose.strip() or purpose != purpose.strip():
            raise ConfigError(f"{where}: purpose {purpose!r} must be a non-empty id or '*'")
    word = entry["level"]
    level = next((lv for lv in Level if lv.keyword == word), None)
    if level is None:
        raise ConfigError(f"{where}: unknown level {word!r}; levels: "
                          f"{', '.join(lv.keyword for lv in Level)}")
    note = entry.get("note", "")
    if not isinstance(note, str):
        raise ConfigError(f"{where}: key 'note' must be a string")
    return Rule(dataset=name, columns=columns, callers=callers, purposes=purposes, level=level,
                label=f"rule {number} ({path})", note=note)


def _strings(entry: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = entry[key]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: key {key!r} must be a list of strings")
    if not value:
        raise ConfigError(f"{where}: key {key!r} must not be empty")
    return tuple(value)


def _check_selector(selector: str, where: str) -> None:
    if selector == ANY:
        return
    kind, colon, name = selector.partition(":")
    if not colon:
        if not selector or any(ch.isspace() for ch in selector):
            raise ConfigError(f"{where}: caller {selector!r} must be a member id, "
                              "'group:<name>', 'role:<city|authority>' or '*'")
        return
    if kind == "role" and name in ROLES:
        return
    if kind == "group" and name and not any(ch.isspace() or ch == ":" for ch in name):
        return
    if kind == "role":
        raise ConfigError(f"{where}: caller {selector!r}: the role must be one of "
                          f"{', '.join(ROLES)}")
    raise ConfigError(f"{where}: caller {selector!r} must be a member id, 'group:<name>', "
                      "'role:<city|authority>' or '*'")
