"""Linkage plans and the signed statements of the protocol, shared by the nodes and the asker.

A plan names two sides (owner and partner): a city, a standard dataset, the key columns whose
distinct values form the city's set, and an optional filter in the aggregate plans' expression
language. Both cities receive the same plan bytes; each request token binds their hash.

Every chunk of points and every stream summary is signed by the node that computed it, with its
manifest key, over LINKAGE_DOMAIN followed by the message's deterministic serialization with the
`signature` field empty. A node re-blinds or compares only points the counterpart's node signed
for the same linkage id: a caller cannot slip in points of its own (docs/linkage.md).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from cityfed.v1 import linkage_pb2, query_pb2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from federation.errors import InvalidQuery, LinkageRefused
from federation.query.compile import expression_nodes
from federation.query.datasets import DATASETS, Dataset
from federation.query.plan import check_plan, parse_plan_bytes
from federation.trust.manifest import Manifest

LINKAGE_ID_BYTES = 16
MAX_KEY_COLUMNS = 4
LINKAGE_DOMAIN = b"cityfed-linkage-v1\x00"

Mode = linkage_pb2.LinkageMode
Step = linkage_pb2.LinkageStep
MODE_NAMES = {"count": Mode.LINKAGE_MODE_COUNT,
              "reveal-to-owner": Mode.LINKAGE_MODE_REVEAL_TO_OWNER}
OWNER, PARTNER = "owner", "partner"


def new_linkage_id() -> bytes:
    return secrets.token_bytes(LINKAGE_ID_BYTES)


def mode_name(mode: int) -> str:
    return next((name for name, value in MODE_NAMES.items() if value == mode), "unspecified")


def parse_linkage_plan(plan_bytes: bytes) -> linkage_pb2.LinkagePlan:
    return parse_plan_bytes(plan_bytes, linkage_pb2.LinkagePlan())


def check_linkage_plan(plan: linkage_pb2.LinkagePlan) -> None:
    """Structural checks, run by the asker and again by each node on the bytes it received."""
    if len(plan.linkage_id) != LINKAGE_ID_BYTES:
        raise InvalidQuery(f"linkage_id must be {LINKAGE_ID_BYTES} random bytes")
    if plan.mode not in MODE_NAMES.values():
        raise InvalidQuery("mode must be LINKAGE_MODE_COUNT or LINKAGE_MODE_REVEAL_TO_OWNER")
    if not plan.owner.city or not plan.partner.city:
        raise InvalidQuery("a linkage needs an owner city and a partner city")
    if plan.owner.city == plan.partner.city:
        raise InvalidQuery("the owner and the partner must be two different cities")
    for role, side in ((OWNER, plan.owner), (PARTNER, plan.partner)):
        check_side(side, role)


def check_side(side: linkage_pb2.LinkageSide, role: str) -> Dataset:
    dataset = DATASETS.get(side.dataset)
    if dataset is None:
        raise InvalidQuery(f"{role}: unknown dataset {side.dataset[:64]!r}; known datasets: "
                           f"{', '.join(DATASETS)}")
    if not 1 <= len(side.key_columns) <= MAX_KEY_COLUMNS:
        raise InvalidQuery(f"{role}: name 1 to {MAX_KEY_COLUMNS} key columns")
    if len(set(side.key_columns)) != len(side.key_columns):
        raise InvalidQuery(f"{role}: a key column is named twice")
    for name in side.key_columns:
        column = dataset.column(name)
        if column is None:
            raise InvalidQuery(f"{role}: {dataset.name} has no column {name[:64]!r}")
        if column.type != "VARCHAR":
            raise InvalidQuery(f"{role}: key column {dataset.name}.{name} is {column.type}; "
                               "linkage keys are VARCHAR identifiers")
    if side.HasField("filter"):
        probe = query_pb2.AggregatePlan(dataset=side.dataset, filter=side.filter)
        probe.aggregates.add(function=query_pb2.AggregateFunction.AGGREGATE_FUNCTION_COUNT_STAR)
        try:
            check_plan(probe)
        except InvalidQuery as error:
            raise InvalidQuery(f"{role} filter: {error}") from None
    return dataset


def side_of(plan: linkage_pb2.LinkagePlan, city: str) -> tuple[str, linkage_pb2.LinkageSide]:
    if plan.owner.city == city:
        return OWNER, plan.owner
    if plan.partner.city == city:
        return PARTNER, plan.partner
    raise InvalidQuery(f"{city} has no side in this linkage plan")


def columns_of(side: linkage_pb2.LinkageSide) -> tuple[str, ...]:
    """Every column a side uses: its keys, then the filter's columns, each once."""
    names = list(side.key_columns)
    if side.HasField("filter"):
        for node in expression_nodes(side.filter):
            if node.WhichOneof("kind") == "column" and node.column not in names:
                names.append(node.column)
    return tuple(names)


# Signed statements.


def sign(message: linkage_pb2.LinkageChunk | linkage_pb2.LinkageSummary, *,
         key: Ed25519PrivateKey, kid: str) -> None:
    message.kid = kid
    message.signature = b""
    message.signature = key.sign(_signed_bytes(message))


@dataclass(frozen=True)
class Counterpart:
    """The city whose signed points a session accepts, for one linkage."""

    linkage_id: bytes
    city: str
    manifest: Manifest

    def check(self, message: linkage_pb2.LinkageChunk | linkage_pb2.LinkageSummary,
              step: int) -> None:
        """Refuse a message this session must not use; say why without quoting its bytes."""
        if message.linkage_id != self.linkage_id:
            raise LinkageRefused("the points belong to another linkage")
        if message.city != self.city or message.step != step:
            raise LinkageRefused(f"expected {_step_name(step)} points of {self.city}")
        found = self.manifest.signing_key(message.kid, datetime.now(UTC))
        if found is None or found[0].id != self.city:
            raise LinkageRefused(f"the points are not signed by a current key of {self.city}")
        signature = message.signature
        try:
            found[1].public_key.verify(signature, _signed_bytes(message))
        except InvalidSignature:
            raise LinkageRefused(f"the points do not carry {self.city}'s signature") from None
        finally:
            message.signature = signature


def _signed_bytes(message) -> bytes:
    signature = message.signature
    message.signature = b""
    try:
        return LINKAGE_DOMAIN + message.SerializeToString(deterministic=True)
    finally:
        message.signature = signature


def _step_name(step: int) -> str:
    return Step.Name(step).removeprefix("LINKAGE_STEP_").lower()
