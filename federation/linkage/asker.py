"""The asker's side of a linkage: open both cities' sessions and carry their blinded points
between them, never able to read them.

    owner  OpenLinkage ──a·H(x)──▶ partner ReblindLinkage ──b·a·H(x)──┐
    partner OpenLinkage ──b·H(y)───────────────────────────────────────┴─▶ owner FinishLinkage

The three streams run at once, each relayed as it arrives (memory stays bounded by a few
chunks). The answer comes from the owner's node; each step's receipt is verified against the
plan and the summary (or result) it covers.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc
from cityfed.v1 import linkage_pb2, node_pb2
from google.protobuf.message import DecodeError

from federation.coordination.coordinator import CityOutcome, CityStatus, Coordinator, failed_call
from federation.errors import InvalidArgument, InvalidQuery
from federation.linkage.plan import check_linkage_plan
from federation.trust.members import Member
from federation.trust.receipts import Receipt, ReceiptInvalid

DEFAULT_LINKAGE_TIMEOUT = 600.0
RELAY_DEPTH = 16  # messages waiting for the owner's FinishLinkage, per relay

_DONE = object()


@dataclass(frozen=True)
class StepReceipt:
    city: str
    step: str  # "open", "reblind" or "finish"
    receipt: Receipt | None


@dataclass
class LinkageOutcome:
    plan: linkage_pb2.LinkagePlan
    result: linkage_pb2.LinkageResult | None
    outcomes: list[CityOutcome]
    receipts: list[StepReceipt] = field(default_factory=list)
    budget: node_pb2.PrivacyBudget | None = None  # the owner's, when it charged
    # Bytes of serialized messages the asker relayed, by direction.
    traffic: dict[str, int] = field(default_factory=dict)
    elapsed_seconds: float = 0.0

    @property
    def complete(self) -> bool:
        return self.result is not None


class _Relay:
    """One stream read on its own thread into a bounded queue; remembers how it ended."""

    def __init__(self, name: str, responses, into: queue.Queue, wrap, counter: list[int]):
        self.name = name
        self.error: grpc.RpcError | None = None
        self.summary: linkage_pb2.LinkageSummary | None = None
        self._responses = responses
        self._into = into
        self._wrap = wrap
        self._counter = counter
        self._thread = threading.Thread(target=self._run, name=f"linkage-{name}", daemon=True)

    def start(self) -> _Relay:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            for response in self._responses:
                message = response.message
                self._counter[0] += message.ByteSize()
                if message.WhichOneof("item") == "summary":
                    self.summary = message.summary
                self._into.put(self._wrap(message=message))
        except grpc.RpcError as error:
            self.error = error
        finally:
            self._into.put(_DONE)

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)


def run_linkage(coordinator: Coordinator, plan: linkage_pb2.LinkagePlan, *, purpose: str,
                timeout: float = DEFAULT_LINKAGE_TIMEOUT) -> LinkageOutcome:
    check_linkage_plan(plan)
    if coordinator.manifest.purpose(purpose) is None:
        registered = ", ".join(p.id for p in coordinator.manifest.purposes)
        raise InvalidArgument(f"purpose {purpose[:64]!r} is not registered; the region's "
                              f"purposes are: {registered}")
    owner, partner = coordinator.region.select_cities([plan.owner.city, plan.partner.city])
    run = _Run(coordinator, plan, owner, partner, purpose, timeout)
    try:
        run.relay()
    finally:
        run.cancel()
    return run.outcome()


class _Run:
    """One linkage as the asker sees it: three streams in, two out, and how each ended."""

    def __init__(self, coordinator: Coordinator, plan: linkage_pb2.LinkagePlan, owner: Member,
                 partner: Member, purpose: str, timeout: float) -> None:
        self.coordinator = coordinator
        self.plan = plan
        self.plan_bytes = plan.SerializeToString()
        self.owner, self.partner = owner, partner
        self.purpose = purpose
        self.started = time.perf_counter()
        self.deadline = time.monotonic() + timeout
        self.errors: dict[str, grpc.RpcError] = {}
        self.traffic = {"owner→partner": [0], "partner→owner": [0], "owner result": [0]}
        self.owner_summary: linkage_pb2.LinkageSummary | None = None
        self.calls: list = []
        self.relays: list[_Relay] = []
        self.finish_bytes: bytes | None = None
        self.finish_call = None

    def _metadata(self, member: Member):
        token = self.coordinator.token(member, self.purpose, self.plan_bytes)
        return (("authorization", f"Bearer {token}"),)

    def _left(self) -> float:
        return max(0.001, self.deadline - time.monotonic())

    def relay(self) -> None:
        request = node_pb2.OpenLinkageRequest(plan=self.plan_bytes)
        owner_stub = self.coordinator.stub(self.owner)
        partner_stub = self.coordinator.stub(self.partner)
        self.owner_open = owner_stub.OpenLinkage(request, metadata=self._metadata(self.owner),
                                                 timeout=self._left())
        self.partner_open = partner_stub.OpenLinkage(
            request, metadata=self._metadata(self.partner), timeout=self._left())
        self.calls += [self.owner_open, self.partner_open]
        # The owner's session exists once its first message arrives: only then may the
        # partner's points be given to it.
        try:
            first = next(self.owner_open)
        except grpc.RpcError as error:
            self.errors[self.owner.id] = error
            # Whether the partner refused too, before it is cancelled: both reasons are news.
            try:
                next(self.partner_open)
            except grpc.RpcError as partner_error:
                self.errors[self.partner.id] = partner_error
            return
        self.reblind = partner_stub.ReblindLinkage(self._owner_points(first),
                                                   timeout=self._left())
        self.calls.append(self.reblind)
        to_owner: queue.Queue = queue.Queue(maxsize=RELAY_DEPTH)
        counter = self.traffic["partner→owner"]
        self.relays = [
            _Relay("open", self.partner_open, to_owner, node_pb2.FinishLinkageRequest,
                   counter).start(),
            _Relay("reblind", self.reblind, to_owner, node_pb2.FinishLinkageRequest,
                   counter).start(),
        ]
        try:
            self.finish_bytes, self.finish_call = self.coordinator.finish_call(
                self.owner).with_call(self._partner_points(to_owner), timeout=self._left())
            self.traffic["owner result"][0] += len(self.finish_bytes)
        except grpc.RpcError as error:
            finish_error = error
        else:
            finish_error = None
        for relay in self.relays:
            relay.join(timeout=5)
        partner_errors = [r.error for r in self.relays if r.error is not None]
        if partner_errors:
            # The owner's FinishLinkage then failed only for want of the partner's points.
            self.errors.setdefault(self.partner.id, _first_cause(partner_errors))
        elif finish_error is not None:
            self.errors.setdefault(self.owner.id, finish_error)

    def _owner_points(self, first) -> Iterator[node_pb2.ReblindLinkageRequest]:
        try:
            for response in _prepend(first, self.owner_open):
                message = response.message
                self.traffic["owner→partner"][0] += message.ByteSize()
                if message.WhichOneof("item") == "summary":
                    self.owner_summary = message.summary
                yield node_pb2.ReblindLinkageRequest(message=message)
        except grpc.RpcError as error:
            self.errors.setdefault(self.owner.id, error)

    def _partner_points(self, to_owner: queue.Queue) -> Iterator[node_pb2.FinishLinkageRequest]:
        finished = 0
        while finished < len(self.relays):
            item = to_owner.get()
            if item is _DONE:
                finished += 1
                if any(relay.error is not None for relay in self.relays):
                    return
                continue
            yield item

    def cancel(self) -> None:
        for call in self.calls:
            call.cancel()

    def outcome(self) -> LinkageOutcome:
        elapsed = time.perf_counter() - self.started
        outcome = LinkageOutcome(self.plan, None, [], elapsed_seconds=elapsed,
                                 traffic={k: v[0] for k, v in self.traffic.items()})
        if self.errors:
            self._refuse_invalid()
            outcome.outcomes = [
                failed_call(m, self.errors[m.id], elapsed * 1000) if m.id in self.errors else
                CityOutcome(m.id, CityStatus.FAILED, code="ABORTED",
                            detail="the other city did not complete its part",
                            elapsed_ms=elapsed * 1000)
                for m in (self.owner, self.partner)]
            return outcome
        try:
            self._check_receipts(outcome)
            response = node_pb2.FinishLinkageResponse.FromString(self.finish_bytes)
        except (ReceiptInvalid, DecodeError) as error:
            outcome.outcomes = [CityOutcome(m.id, CityStatus.FAILED, code="DATA_LOSS",
                                            detail=f"answer not accepted: {error}",
                                            elapsed_ms=elapsed * 1000)
                                for m in (self.owner, self.partner)]
            return outcome
        result = outcome.result = response.result
        if response.HasField("budget"):
            outcome.budget = response.budget
        receipts = {(r.city, r.step): r.receipt for r in outcome.receipts}
        outcome.outcomes = [
            CityOutcome(self.owner.id, CityStatus.ANSWERED, groups=1, elapsed_ms=elapsed * 1000,
                        receipt=receipts[(self.owner.id, "finish")],
                        private=not result.exact or result.owner_padded),
            CityOutcome(self.partner.id, CityStatus.ANSWERED, elapsed_ms=elapsed * 1000,
                        receipt=receipts[(self.partner.id, "reblind")],
                        private=result.partner_padded),
        ]
        return outcome

    def _refuse_invalid(self) -> None:
        for city, error in self.errors.items():
            if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise InvalidQuery(f"{city} refused the plan: {error.details()}")

    def _check_receipts(self, outcome: LinkageOutcome) -> None:
        """Each step's receipt must cover the plan and what the step sent: its stream's
        summary, or the owner's result."""
        open_relay, reblind_relay = self.relays
        steps = [(self.owner, "open", self.owner_open, _bytes(self.owner_summary)),
                 (self.partner, "open", self.partner_open, _bytes(open_relay.summary)),
                 (self.partner, "reblind", self.reblind, _bytes(reblind_relay.summary)),
                 (self.owner, "finish", self.finish_call, self.finish_bytes)]
        for member, step, call, covered in steps:
            outcome.receipts.append(StepReceipt(member.id, step, self.coordinator.check_receipt(
                member, call, self.plan_bytes, covered)))


def _first_cause(errors: list[grpc.RpcError]) -> grpc.RpcError:
    """The error that says why: a relay cancelled because the other one failed says nothing."""
    return next((e for e in errors if e.code() != grpc.StatusCode.CANCELLED), errors[0])


def _bytes(summary: linkage_pb2.LinkageSummary | None) -> bytes:
    return summary.SerializeToString() if summary is not None else b""


def _prepend(first, rest):
    yield first
    yield from rest
