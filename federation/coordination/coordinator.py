"""The coordinator: send one plan to every city at once, merge what comes back, report every city.

It reaches nodes only through the generated gRPC stubs, like any other client: over mutual TLS
as one member of the region, with a request token per city bound to the plan bytes. A city that
does not answer is listed with the reason, never silently left out.
"""

from __future__ import annotations

import enum
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import grpc
from cityfed.v1 import node_pb2, node_pb2_grpc, query_pb2
from google.protobuf.message import DecodeError

from federation.errors import BudgetExhausted, IncompleteAnswer, InvalidArgument, InvalidQuery
from federation.privacy.accuracy import ColumnAccuracy, column_accuracy
from federation.query.finish import Table, finish
from federation.query.merge import merge_partials
from federation.query.plan import check_query
from federation.query.sql import parse_query
from federation.serving.grpc_errors import error_reason
from federation.trust.identity import Identity, channel_options
from federation.trust.manifest import Manifest
from federation.trust.members import Member
from federation.trust.receipts import RECEIPT_METADATA_KEY, Receipt, ReceiptInvalid, verify_receipt
from federation.trust.tokens import mint_token

DEFAULT_CITY_TIMEOUT = 10.0
AGGREGATE_METHOD = "/cityfed.v1.NodeService/Aggregate"
FINISH_LINKAGE_METHOD = "/cityfed.v1.NodeService/FinishLinkage"


class CityStatus(enum.Enum):
    ANSWERED = "answered"
    REFUSED = "refused"
    TIMED_OUT = "timed out"
    UNREACHABLE = "unreachable"
    FAILED = "failed"


_STATUS_OF_CODE = {
    grpc.StatusCode.DEADLINE_EXCEEDED: CityStatus.TIMED_OUT,
    grpc.StatusCode.UNAVAILABLE: CityStatus.UNREACHABLE,
    grpc.StatusCode.PERMISSION_DENIED: CityStatus.REFUSED,
    grpc.StatusCode.UNAUTHENTICATED: CityStatus.REFUSED,
}


@dataclass(frozen=True)
class CityOutcome:
    city: str
    status: CityStatus
    code: str = "OK"
    detail: str = ""
    groups: int = 0
    elapsed_ms: float = 0.0
    receipt: Receipt | None = None  # the city's signed receipt for its answer, verified
    private: bool = False  # the city's partials were differentially private
    epsilon_charged: float = 0.0  # ε the city charged the asking member for this answer
    epsilon_remaining: float = 0.0  # ε left in that budget, for this purpose and period
    # How the city made a private answer (noise scales per aggregate); None when exact.
    privacy: node_pb2.PrivacyReport | None = None
    response: bytes = b""  # the exact response bytes the receipt covers


@dataclass(frozen=True)
class FederatedAnswer:
    table: Table
    outcomes: list[CityOutcome] = field(default_factory=list)
    # One per column: how far a private answer's values may be from the exact ones.
    accuracy: list[ColumnAccuracy] = field(default_factory=list)
    # The question as run, and the exact plan bytes every city got (the receipts' plan hash):
    # with each city's response bytes, what a verifier needs to redo the merge.
    query: query_pb2.FederatedQuery | None = None
    plan: bytes = b""
    # One per column: its DuckDB type, from the question, so a column of NULLs only is typed.
    column_types: tuple[str, ...] = ()

    @property
    def private(self) -> bool:
        return any(o.private for o in self.outcomes)

    @property
    def complete(self) -> bool:
        return all(o.status is CityStatus.ANSWERED for o in self.outcomes)

    @property
    def missing(self) -> list[CityOutcome]:
        return [o for o in self.outcomes if o.status is not CityStatus.ANSWERED]


class Coordinator:
    """Asks the region's cities as one member; holds one channel per city, reused across
    questions."""

    def __init__(self, manifest: Manifest, identity: Identity, *,
                 city_timeout: float = DEFAULT_CITY_TIMEOUT, verify_receipts: bool = True,
                 max_parallel_calls: int = 64) -> None:
        self.manifest = manifest
        self.verify_receipts = verify_receipts
        self.region = manifest.to_region()
        self.identity = identity
        self.city_timeout = city_timeout
        self._credentials = identity.channel_credentials()
        self._channels: dict[str, grpc.Channel] = {}
        self._aggregate: dict[str, grpc.UnaryUnaryMultiCallable] = {}
        self._channel_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max_parallel_calls,
                                        thread_name_prefix="coordinator")

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()
        self._aggregate.clear()

    def __enter__(self) -> Coordinator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def stub(self, member: Member) -> node_pb2_grpc.NodeServiceStub:
        return node_pb2_grpc.NodeServiceStub(self._channel(member))

    def channel(self, member: Member) -> grpc.Channel:
        """The channel to a city, opened on first use and kept (a gateway follows its state)."""
        return self._channel(member)

    def finish_call(self, member: Member) -> grpc.StreamUnaryMultiCallable:
        """NodeService.FinishLinkage, returning the response's exact bytes (its receipt covers
        them)."""
        return self._channel(member).stream_unary(
            FINISH_LINKAGE_METHOD,
            request_serializer=node_pb2.FinishLinkageRequest.SerializeToString,
            response_deserializer=None)

    def token(self, member: Member, purpose: str, plan_bytes: bytes) -> str:
        return self._token(member, purpose, plan_bytes)

    def _aggregate_call(self, member: Member) -> grpc.UnaryUnaryMultiCallable:
        """NodeService.Aggregate, returning the response's exact bytes: the city's receipt
        covers those bytes, not a re-encoding of them."""
        with self._channel_lock:
            return self._aggregate.get(member.id) or self._open(member)[1]

    def _channel(self, member: Member) -> grpc.Channel:
        with self._channel_lock:
            return self._channels.get(member.id) or self._open(member)[0]

    def _open(self, member: Member) -> tuple[grpc.Channel, grpc.UnaryUnaryMultiCallable]:
        channel = grpc.secure_channel(member.endpoint, self._credentials,
                                      options=channel_options(member.id, self.manifest.region))
        self._channels[member.id] = channel
        call = self._aggregate[member.id] = channel.unary_unary(
            AGGREGATE_METHOD, request_serializer=node_pb2.AggregateRequest.SerializeToString,
            response_deserializer=None)
        return channel, call

    def catalogs(self, purpose: str, cities: tuple[str, ...] = (), timeout: float | None = None,
                 ) -> list[tuple[str, node_pb2.ListDatasetsResponse | None, str]]:
        """Every asked city's catalog for a purpose, with the asking member's privacy budget:
        (city, response, "") or (city, None, why it did not answer)."""
        timeout = self.city_timeout if timeout is None else timeout
        request = node_pb2.ListDatasetsRequest(purpose=purpose)

        def one(member: Member):
            stub = node_pb2_grpc.NodeServiceStub(self._channel(member))
            try:
                return member.id, stub.ListDatasets(request, timeout=timeout), ""
            except grpc.RpcError as error:
                return member.id, None, f"{error.code().name}: {error.details()}"

        members = self.region.select_cities(cities)
        return list(self._pool.map(one, members))

    def ask_sql(self, sql: str, **options) -> FederatedAnswer:
        return self.ask(parse_query(sql), **options)

    def ask(self, query: query_pb2.FederatedQuery, *, purpose: str, cities: tuple[str, ...] = (),
            require_all: bool = False, timeout: float | None = None) -> FederatedAnswer:
        column_types = tuple(str(t) for t in check_query(query))
        if self.manifest.purpose(purpose) is None:
            registered = ", ".join(p.id for p in self.manifest.purposes)
            raise InvalidArgument(f"purpose {purpose[:64]!r} is not registered; the region's "
                                  f"purposes are: {registered}")
        members = self.region.select_cities(cities)
        timeout = self.city_timeout if timeout is None else timeout
        plan_bytes = query.plan.SerializeToString()
        request = node_pb2.AggregateRequest(plan=plan_bytes)
        # Minted here, one after another, rather than on the pool threads: there they ran at
        # the same moment as the other cities' calls and waited on each other for the GIL.
        asked = [self._pool.submit(self._ask_city, member, request,
                                   self._token(member, purpose, plan_bytes), timeout)
                 for member in members]
        outcomes, answers, reports = [], [], []
        for future in asked:
            outcome, groups = future.result()
            outcomes.append(outcome)
            if groups is not None:
                answers.append(groups)
                reports.append(outcome.privacy)
        invalid = [o for o in outcomes if o.code == grpc.StatusCode.INVALID_ARGUMENT.name]
        if invalid:
            raise InvalidQuery(f"{invalid[0].city} refused the plan: {invalid[0].detail}")
        if answers:
            merged = merge_partials(query.plan, answers)
            table = finish(query, merged)
            accuracy = column_accuracy(query, merged, table, reports)
        else:
            table, accuracy = Table([c.name for c in query.columns], []), []
        answer = FederatedAnswer(table, outcomes, accuracy, query, plan_bytes, column_types)
        if require_all and not answer.complete:
            raise IncompleteAnswer("not every city answered: " + "; ".join(
                f"{o.city} {o.status.value} ({o.detail})" for o in answer.missing))
        return answer


    def _token(self, member: Member, purpose: str, plan_bytes: bytes) -> str:
        return mint_token(key=self.identity.signing_key, kid=self.identity.kid,
                          caller=self.identity.member_id, audience=member.id, purpose=purpose,
                          plan_bytes=plan_bytes, certificate_x5t=self.identity.certificate_x5t)

    def _ask_city(self, member: Member, request: node_pb2.AggregateRequest, token: str,
                  timeout: float) -> tuple[CityOutcome, list | None]:
        """One city's part, on a pool thread: a blocking call polls on its own thread, where a
        future would start a new polling thread per call (~3 ms of CPU each in grpcio)."""
        started = time.perf_counter()
        try:
            response_bytes, call = self._aggregate_call(member).with_call(
                request, timeout=timeout, metadata=(("authorization", f"Bearer {token}"),))
        except grpc.RpcError as error:
            return failed_call(member, error, _elapsed_ms(started)), None
        elapsed = _elapsed_ms(started)
        try:
            receipt = self.check_receipt(member, call, request.plan, response_bytes)
            response = node_pb2.AggregateResponse.FromString(response_bytes)
        except (ReceiptInvalid, DecodeError) as error:
            return CityOutcome(member.id, CityStatus.FAILED, code="DATA_LOSS",
                               detail=f"answer not accepted: {error}", elapsed_ms=elapsed), None
        if not response.HasField("privacy"):
            return CityOutcome(member.id, CityStatus.ANSWERED, groups=len(response.groups),
                               elapsed_ms=elapsed, receipt=receipt,
                               response=response_bytes), response.groups
        report = response.privacy
        left = max(0.0, report.budget.epsilon_limit - report.budget.epsilon_spent)
        return CityOutcome(member.id, CityStatus.ANSWERED, groups=len(response.groups),
                           elapsed_ms=elapsed, receipt=receipt, response=response_bytes,
                           private=True, epsilon_charged=report.epsilon,
                           epsilon_remaining=left, privacy=report), response.groups

    def check_receipt(self, member: Member, call, plan_bytes: bytes,
                      response_bytes: bytes) -> Receipt | None:
        """The receipt in a call's trailing metadata, verified to be `member`'s for exactly
        these plan and response bytes (unless receipts are not verified)."""
        found = [v for k, v in call.trailing_metadata() or () if k == RECEIPT_METADATA_KEY]
        if not found:
            if self.verify_receipts:
                raise ReceiptInvalid(f"{member.id} sent no receipt")
            return None
        receipt = Receipt.from_json(found[0])
        if self.verify_receipts:
            verify_receipt(receipt, manifest=self.manifest, city=member.id,
                           plan_bytes=plan_bytes, response_bytes=response_bytes)
        return receipt


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def failed_call(member: Member, error: grpc.RpcError, elapsed_ms: float) -> CityOutcome:
    """A city's outcome for a call that ended in an error: refused, timed out, unreachable."""
    code = error.code()
    status = _STATUS_OF_CODE.get(code, CityStatus.FAILED)
    if error_reason(error) == BudgetExhausted.reason:  # the city's policy refuses: not a fault
        status = CityStatus.REFUSED
    detail = error.details() or code.name.lower()
    if status is CityStatus.TIMED_OUT:
        detail = "no answer before the deadline"
    elif status is CityStatus.UNREACHABLE:
        detail = f"cannot reach {member.endpoint}"
    return CityOutcome(member.id, status, code=code.name, detail=detail, elapsed_ms=elapsed_ms)
