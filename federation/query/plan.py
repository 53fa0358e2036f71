"""Structural checks on plans and federated queries, shared by the coordinator and the nodes.

A node never trusts the coordinator's checks: it runs `check_plan` again on the bytes it
received. Both check types statically (`federation.query.typecheck`) before anything runs, so
that no row's value is ever cast, and quoted in an error, at run time.
"""

from __future__ import annotations

import hashlib
from typing import TypeVar

from cityfed.v1 import query_pb2
from google.protobuf.message import Message

from federation.errors import InvalidQuery, TooLarge
from federation.query.compile import ARITY, date_part_name
from federation.query.datasets import DATASETS, Dataset
from federation.query.typecheck import (
    PlanTypes,
    QueryTypeError,
    SqlType,
    check_plan_types,
    check_query_types,
)

A = query_pb2.AggregateFunction
M = TypeVar("M", bound=Message)
F = query_pb2.Function

MAX_EXPRESSION_NODES = 5_000
# Protobuf parsers refuse messages nested deeper than 100; an expression level costs two.
MAX_EXPRESSION_DEPTH = 40
MAX_GROUP_KEYS = 16
MAX_AGGREGATES = 64
MAX_PLAN_BYTES = 256 * 1024


def plan_hash(plan_bytes: bytes) -> str:
    """The SHA-256 of the exact plan bytes a node receives, as hex."""
    return hashlib.sha256(plan_bytes).hexdigest()


def parse_plan(plan_bytes: bytes) -> query_pb2.AggregatePlan:
    return parse_plan_bytes(plan_bytes, query_pb2.AggregatePlan())


def parse_plan_bytes(plan_bytes: bytes, plan: M) -> M:
    """Parse plan bytes of at most MAX_PLAN_BYTES into `plan`, an empty message."""
    if len(plan_bytes) > MAX_PLAN_BYTES:
        raise TooLarge(f"the plan is {len(plan_bytes)} bytes; the limit is {MAX_PLAN_BYTES}")
    try:
        plan.ParseFromString(plan_bytes)
    except Exception:  # protobuf raises its own DecodeError, sometimes others, on bad bytes
        raise InvalidQuery(f"the plan bytes are not a serialized "
                           f"{plan.DESCRIPTOR.full_name}") from None
    return plan


def check_plan(plan: query_pb2.AggregatePlan) -> Dataset:
    """Check what a node will run; returns the dataset it reads."""
    return check_typed_plan(plan)[0]


def check_typed_plan(plan: query_pb2.AggregatePlan) -> tuple[Dataset, PlanTypes]:
    """Check what a node will run; returns the dataset it reads and the types it returns."""
    dataset = DATASETS.get(plan.dataset)
    if dataset is None:
        known = ", ".join(DATASETS)
        raise InvalidQuery(f"unknown dataset {plan.dataset[:64]!r}; known datasets: {known}")
    if not plan.aggregates and not plan.group_by:
        raise InvalidQuery("a plan needs at least one aggregate or group key")
    if len(plan.group_by) > MAX_GROUP_KEYS:
        raise TooLarge(f"at most {MAX_GROUP_KEYS} group keys, got {len(plan.group_by)}")
    if len(plan.aggregates) > MAX_AGGREGATES:
        raise TooLarge(f"at most {MAX_AGGREGATES} aggregates, got {len(plan.aggregates)}")
    budget = _Budget()
    if plan.HasField("filter"):
        _check_row_expression(plan.filter, dataset, budget, "WHERE")
    for key in plan.group_by:
        _check_row_expression(key, dataset, budget, "GROUP BY")
    for aggregate in plan.aggregates:
        _check_aggregate(aggregate, dataset, budget)
    return dataset, check_plan_types(plan, dataset)


def check_query(query: query_pb2.FederatedQuery) -> tuple[SqlType, ...]:
    """Check a whole federated query: its plan and what happens after the merge; returns the
    types of its output columns."""
    try:
        types = check_typed_plan(query.plan)[1]
    except QueryTypeError as error:
        # Said so that a caller can tell it from a plan the cities refused ("tianjin refused
        # the plan: ...").
        raise QueryTypeError(f"refused the plan before asking any city: {error}",
                             error.node) from None
    if not query.columns:
        raise InvalidQuery("a query needs at least one output column")
    budget = _Budget()
    groups, aggregates = len(query.plan.group_by), len(query.plan.aggregates)
    for column in query.columns:
        _check_merged_expression(column.expression, groups, aggregates, budget, "SELECT")
    if query.HasField("having"):
        _check_merged_expression(query.having, groups, aggregates, budget, "HAVING")
    for key in query.order_by:
        _check_merged_expression(key.expression, groups, aggregates, budget, "ORDER BY")
    if query.HasField("limit") and query.limit < 0:
        raise InvalidQuery("LIMIT must not be negative")
    if query.offset < 0:
        raise InvalidQuery("OFFSET must not be negative")
    return check_query_types(query, types)


class _Budget:
    def __init__(self) -> None:
        self.nodes = 0

    def spend(self, depth: int) -> None:
        self.nodes += 1
        if self.nodes > MAX_EXPRESSION_NODES:
            raise TooLarge(f"the query has more than {MAX_EXPRESSION_NODES} expression nodes")
        if depth > MAX_EXPRESSION_DEPTH:
            raise TooLarge(f"expressions may nest at most {MAX_EXPRESSION_DEPTH} deep")


def _walk(expression: query_pb2.Expression, budget: _Budget, depth: int = 0):
    """Yield every node of an expression tree, charging the budget and checking every call."""
    stack = [(expression, depth)]
    while stack:
        node, level = stack.pop()
        budget.spend(level)
        yield node
        if node.WhichOneof("kind") == "call":
            _check_call(node.call)
            stack.extend((argument, level + 1) for argument in node.call.arguments)


def _check_call(call: query_pb2.Call) -> None:
    if call.function not in ARITY:
        raise InvalidQuery(f"function {call.function} is not supported")
    low, high = ARITY[call.function]
    count = len(call.arguments)
    if count < low or (high is not None and count > high):
        name = F.Name(call.function).removeprefix("FUNCTION_").lower()
        more = "" if high == low else " or more"
        raise InvalidQuery(f"{name} takes {low}{more} arguments, got {count}")
    if call.function in (F.FUNCTION_DATE_TRUNC, F.FUNCTION_DATE_DIFF):
        date_part_name(call.arguments[0])


def _check_row_expression(expression, dataset: Dataset, budget: _Budget, clause: str) -> None:
    for node in _walk(expression, budget):
        kind = node.WhichOneof("kind")
        if kind is None:
            raise InvalidQuery(f"an expression in {clause} is empty")
        if kind == "column" and dataset.column(node.column) is None:
            raise InvalidQuery(
                f"unknown column {node.column[:64]!r} in {clause}; dataset {dataset.name} has: "
                + ", ".join(dataset.column_names)
            )
        if kind in ("group_key", "aggregate"):
            raise InvalidQuery(f"{clause} of a node plan cannot refer to a merged {kind}")


def _check_aggregate(aggregate: query_pb2.Aggregate, dataset: Dataset, budget: _Budget) -> None:
    function = aggregate.function
    if function == A.AGGREGATE_FUNCTION_COUNT_STAR:
        if aggregate.HasField("argument"):
            raise InvalidQuery("count(*) takes no argument")
        return
    if function not in A.values() or function == A.AGGREGATE_FUNCTION_UNSPECIFIED:
        raise InvalidQuery(f"aggregate function {function} is not supported")
    if not aggregate.HasField("argument"):
        name = A.Name(function).removeprefix("AGGREGATE_FUNCTION_").lower()
        raise InvalidQuery(f"{name}() needs an argument")
    _check_row_expression(aggregate.argument, dataset, budget, "an aggregate")


def _check_merged_expression(expression, groups: int, aggregates: int, budget: _Budget,
                             clause: str) -> None:
    for node in _walk(expression, budget):
        kind = node.WhichOneof("kind")
        if kind is None:
            raise InvalidQuery(f"an expression in {clause} is empty")
        if kind == "column":
            raise InvalidQuery(
                f"column {node.column[:64]!r} in {clause} must appear in GROUP BY or be used "
                "in an aggregate"
            )
        if kind == "group_key" and node.group_key >= groups:
            raise InvalidQuery(f"{clause} refers to group key {node.group_key}; there are {groups}")
        if kind == "aggregate" and node.aggregate >= aggregates:
            raise InvalidQuery(
                f"{clause} refers to aggregate {node.aggregate}; there are {aggregates}"
            )
