"""This city's side of a private set intersection (docs/linkage.md).

A session lives from OpenLinkage until the owner's FinishLinkage (or the partner's re-blinding)
ends it, or until it expires: it holds the one-time secret scalar, which never leaves this
process and its blinding workers. Each phase runs once per session: the city's own set is sent
once, the counterpart's set is re-blinded once (and only points the counterpart's node signed
for this linkage are accepted), and the owner compares once. The owner keeps its own keys only
in REVEAL_TO_OWNER mode, where it will say which of them matched.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
from cityfed.v1 import linkage_pb2

from federation.errors import (
    DeadlineExceeded,
    InvalidQuery,
    LinkageIncomplete,
    LinkageRefused,
    LinkageReplayed,
    LinkageSessionUnknown,
    Overloaded,
    PolicyDenied,
    TooLarge,
    TooManyCalls,
)
from federation.linkage.plan import (
    OWNER,
    PARTNER,
    Counterpart,
    Mode,
    Step,
    check_linkage_plan,
    columns_of,
    mode_name,
    parse_linkage_plan,
    side_of,
    sign,
)
from federation.linkage.points import CHUNK_POINTS, POINT_BYTES, Blinder, dummy_identifiers
from federation.linkage.tags import TagList, TagSet
from federation.privacy.noise import half_width, noise_stddev, noisy_vector, padding_size
from federation.serving import call_facts
from federation.serving.grpc_errors import STREAM_SUMMARY
from node.budget import BudgetState, PrivacyBudget, budget_limits
from node.compile import compile_linkage_keys
from node.policy import Caller, Level, Policy, column_level
from node.stores import OnCancel, Store
from node.trust import NodeTrust

# A linkage id is refused again for this long after it was first seen (the replay store keeps
# it across restarts); far beyond any session's lifetime.
LINKAGE_ID_MEMORY_SECONDS = 30 * 24 * 3600
# Chunks being blinded at once while the owner compares (the workers' queue stays full).
COMPARE_WINDOW = 8

Message = linkage_pb2.LinkageMessage


@dataclass(frozen=True)
class LinkageLimits:
    session_seconds: float = 900.0
    max_points: int = 20_000_000
    max_sessions: int = 4
    max_response_bytes: int = 64 * 1024 * 1024

    @property
    def per_caller(self) -> int:
        """Sessions one member may hold open: half, so no member can lock the others out."""
        return max(1, self.max_sessions // 2)


@dataclass(eq=False)
class Session:
    linkage_id: bytes
    plan_bytes: bytes
    plan: linkage_pb2.LinkagePlan
    role: str
    caller: str
    purpose: str
    counterpart: Counterpart
    expires_at: float  # time.monotonic()
    scalar: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    private: bool = False
    count_epsilon: float = 0.0  # what this city lets a COUNT's noise use; 0: exact allowed
    points: int = 0  # the city's own set as sent, dummies included
    # Owner only: which positions of the sent order are dummies, and (REVEAL_TO_OWNER) the
    # element each position holds, to name the matched keys.
    dummy_at: np.ndarray | None = None
    keys: pa.StringArray | None = None
    order: np.ndarray | None = None
    budget: BudgetState | None = None
    sent: bool = False
    reblinding: bool = False
    reblinded: bool = False
    finishing: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class Sessions:
    """The open sessions, by linkage id; at most `max_sessions`, each until it expires."""

    def __init__(self, limits: LinkageLimits, clock: Callable[[], float] = time.monotonic):
        self._limits = limits
        self._clock = clock
        self._open: dict[bytes, Session] = {}
        self._lock = threading.Lock()

    def expiry(self) -> float:
        return self._clock() + self._limits.session_seconds

    def add(self, session: Session) -> None:
        with self._lock:
            self._purge()
            if len(self._open) >= self._limits.max_sessions:
                raise Overloaded(f"{self._limits.max_sessions} linkage sessions are open here, "
                                 "the most this node keeps; retry when one has finished")
            mine = sum(1 for s in self._open.values() if s.caller == session.caller)
            if mine >= self._limits.per_caller:
                raise TooManyCalls(f"{session.caller} has {mine} linkage sessions open here, the "
                                   "most one member may; finish or let one expire first")
            self._open[session.linkage_id] = session

    def get(self, linkage_id: bytes, caller: str, role: str) -> Session:
        with self._lock:
            self._purge()
            session = self._open.get(linkage_id)
        if session is None or session.caller != caller or session.role != role:
            raise LinkageSessionUnknown(
                f"no open linkage session of {caller} with this id in which this city is the "
                f"{role}: never opened, expired or finished")
        return session

    def end(self, session: Session) -> None:
        with self._lock:
            if self._open.get(session.linkage_id) is session:
                del self._open[session.linkage_id]
        session.scalar = b""

    def _purge(self) -> None:
        now = self._clock()
        for linkage_id in [i for i, s in self._open.items() if s.expires_at <= now]:
            self._open.pop(linkage_id).scalar = b""


def decide_linkage(policy: Policy, caller: Caller, purpose: str, city: str,
                   plan: linkage_pb2.LinkagePlan, role: str) -> bool:
    """Whether this city takes part for this caller; True when its side is private (a column
    granted below `row`), so its set is padded and a count is noised. Raises PolicyDenied."""
    side = plan.owner if role == OWNER else plan.partner
    owner = plan.owner.city
    revealing = plan.mode == Mode.LINKAGE_MODE_REVEAL_TO_OWNER
    if revealing and caller.id != owner:
        raise PolicyDenied(f"reveal-to-owner tells {owner} which of its own records match; "
                           f"only {owner} may ask it, {caller.id} may ask for a count")
    private = False
    for name in columns_of(side):
        granted, _ = column_level(policy, caller, purpose, side.dataset, name)
        needed = Level.ROW if revealing and role == OWNER and name in side.key_columns \
            else Level.MATCH
        if granted < needed:
            use = "a revealed key" if needed is Level.ROW else "a linkage key or condition"
            raise PolicyDenied(f"{side.dataset}.{name[:64]} needs {needed.keyword} as {use} for "
                               f"purpose {purpose!r}; {city} grants {caller.id} "
                               f"{granted.keyword}")
        private = private or granted < Level.ROW
    return private


class LinkageNode:
    """The protocol steps of one node; the gRPC servicer only wraps messages around them."""

    def __init__(self, *, city: str, store: Store, trust: NodeTrust, budget: PrivacyBudget,
                 blinder: Blinder, limits: LinkageLimits) -> None:
        self.city = city
        self.store = store
        self.trust = trust
        self.budget = budget
        self.blinder = blinder
        self.limits = limits
        self.sessions = Sessions(limits)
        self._comparing = ThreadPoolExecutor(max_workers=COMPARE_WINDOW,
                                             thread_name_prefix=f"{city}-linkage")

    def close(self) -> None:
        self._comparing.shutdown(wait=False, cancel_futures=True)

    # OpenLinkage ------------------------------------------------------------------------------

    def open(self, plan_bytes: bytes, caller: Caller, purpose: str, *, timeout: float,
             on_cancel: OnCancel | None = None) -> Iterator[Message]:
        deadline = time.monotonic() + timeout
        facts = call_facts.current()
        facts["plan_bytes"] = plan_bytes
        plan = parse_linkage_plan(plan_bytes)
        check_linkage_plan(plan)
        role, side = side_of(plan, self.city)
        facts.update(linkage_id=plan.linkage_id.hex(), linkage_role=role,
                     linkage_mode=mode_name(plan.mode))
        counterpart = plan.partner.city if role == OWNER else plan.owner.city
        manifest = self.trust.state.manifest
        if manifest.member(counterpart) is None:
            raise InvalidQuery(f"{counterpart[:64]!r} is not a member of the region")
        private = decide_linkage(self.trust.policy, caller, purpose, self.city, plan, role)
        if not self.trust.replay.remember(f"linkage:{plan.linkage_id.hex()}",
                                          int(time.time()) + LINKAGE_ID_MEMORY_SECONDS):
            raise LinkageReplayed("this linkage id was already used; each is answered once")
        session = Session(plan.linkage_id, plan_bytes, plan, role, caller.id, purpose,
                          Counterpart(plan.linkage_id, counterpart, manifest),
                          self.sessions.expiry(), private=private)
        self.sessions.add(session)
        try:
            yield from self._send_own_set(session, side, facts, deadline, on_cancel)
        except BaseException:
            self.sessions.end(session)
            raise
        with session.lock:
            session.sent = True
            done = session.role == PARTNER and session.reblinded
        if done:
            self.sessions.end(session)

    def _send_own_set(self, session: Session, side, facts: dict, deadline: float,
                      on_cancel: OnCancel | None) -> Iterator[Message]:
        settings = self.trust.policy.privacy
        if session.private:
            epsilon, delta = settings.epsilon_per_question, settings.delta_per_question
            session.budget = self.budget.charge(session.caller, session.purpose, epsilon, delta,
                                                budget_limits(settings))
            facts["epsilon"], facts["delta"] = epsilon, delta
            # Half for the padded size, half for a count's noise.
            if session.plan.mode == Mode.LINKAGE_MODE_COUNT:
                session.count_epsilon = epsilon / 2
        keys = self.store.linkage_keys(compile_linkage_keys(side, self.store.dialect),
                                       timeout=deadline - time.monotonic(), on_cancel=on_cancel)
        if len(keys) > self.limits.max_points:
            raise TooLarge(f"this city's set has more than {self.limits.max_points} elements, "
                           "the most this node blinds in one linkage")
        dummies = (padding_size(settings.epsilon_per_question / 2, settings.delta_per_question)
                   if session.private else 0)
        real = len(keys)
        session.points = total = real + dummies
        order = _random_order(total)
        if session.role == OWNER:
            session.dummy_at = order >= real
            if session.plan.mode == Mode.LINKAGE_MODE_REVEAL_TO_OWNER:
                session.keys, session.order = keys, order
        facts["points_sent"] = total

        def batches() -> Iterator[list[str]]:
            for start in range(0, total, CHUNK_POINTS):
                if time.monotonic() > deadline:
                    raise DeadlineExceeded("the deadline passed while blinding this city's set")
                positions = order[start:start + CHUNK_POINTS]
                is_real = positions < real
                batch = np.empty(len(positions), dtype=object)
                batch[is_real] = keys.take(pa.array(positions[is_real])).to_numpy(
                    zero_copy_only=False)
                batch[~is_real] = dummy_identifiers(int((~is_real).sum()))
                yield batch.tolist()

        digest = hashlib.sha256()
        chunks = 0
        for index, points in enumerate(self.blinder.hash_and_blind_stream(session.scalar,
                                                                          batches())):
            digest.update(points)
            chunks = index + 1
            yield Message(chunk=self._signed_chunk(session, Step.LINKAGE_STEP_BLINDED, index,
                                                   points))
        summary = linkage_pb2.LinkageSummary(
            linkage_id=session.linkage_id, city=self.city, step=Step.LINKAGE_STEP_BLINDED,
            points=total, chunks=chunks, points_sha256=digest.hexdigest(),
            padded=session.private, count_epsilon=session.count_epsilon)
        sign(summary, key=self.trust.signing_key, kid=self.trust.kid)
        facts[STREAM_SUMMARY] = summary
        yield Message(summary=summary)

    # ReblindLinkage (the partner) -------------------------------------------------------------

    def reblind(self, messages: Iterator[Message], caller: Caller) -> Iterator[Message]:
        facts = call_facts.current()
        session, messages = self._continue(
            messages, caller, PARTNER, "reblinding",
            "the counterpart's set was already re-blinded in this session; each set is "
            "re-blinded once", facts)
        incoming = _Incoming(session.counterpart, Step.LINKAGE_STEP_BLINDED,
                             self.limits.max_points)
        try:
            digest = hashlib.sha256()
            sent = 0
            points_in = incoming.points(messages)
            for index, points in enumerate(self.blinder.blind_stream(session.scalar,
                                                                     points_in)):
                digest.update(points)
                sent += len(points) // POINT_BYTES
                yield Message(chunk=self._signed_chunk(session, Step.LINKAGE_STEP_REBLINDED,
                                                       index, points))
            incoming.require_summary()
            summary = linkage_pb2.LinkageSummary(
                linkage_id=session.linkage_id, city=self.city, step=Step.LINKAGE_STEP_REBLINDED,
                points=sent, chunks=incoming.chunks, points_sha256=digest.hexdigest())
            sign(summary, key=self.trust.signing_key, kid=self.trust.kid)
            facts["points_received"] = facts["points_sent"] = sent
            facts[STREAM_SUMMARY] = summary
            yield Message(summary=summary)
        except BaseException:
            self.sessions.end(session)
            raise
        with session.lock:
            session.reblinded = True
            done = session.sent
        if done:
            self.sessions.end(session)

    # FinishLinkage (the owner) ----------------------------------------------------------------

    def finish(self, messages: Iterator[Message], caller: Caller,
               ) -> tuple[linkage_pb2.LinkageResult, BudgetState | None]:
        facts = call_facts.current()
        session, messages = self._continue(
            messages, caller, OWNER, "finishing",
            "this linkage was already compared; each is compared once", facts)
        try:
            return self._compare(session, messages, facts), session.budget
        finally:
            self.sessions.end(session)

    def _compare(self, session: Session, messages: Iterator[Message],
                 facts: dict) -> linkage_pb2.LinkageResult:
        theirs = _Incoming(session.counterpart, Step.LINKAGE_STEP_BLINDED, self.limits.max_points)
        mine = _Incoming(session.counterpart, Step.LINKAGE_STEP_REBLINDED, session.points)
        tags, reblinded_mine = TagSet(), TagList(session.points)
        pending: deque[Future] = deque()
        for message in messages:
            step = _step(message)
            if step == Step.LINKAGE_STEP_BLINDED:
                for points in theirs.take(message):
                    pending.append(self._comparing.submit(self.blinder.blind, session.scalar,
                                                          points))
                    while len(pending) >= COMPARE_WINDOW:
                        tags.add(pending.popleft().result())
            else:
                for points in mine.take(message):
                    reblinded_mine.put(mine.chunks - 1, points)
        while pending:
            tags.add(pending.popleft().result())
        theirs.require_summary()
        mine.require_summary()
        if mine.received != session.points:
            raise LinkageIncomplete(f"the partner re-blinded {mine.received} points; this city "
                                    f"sent {session.points}")
        tags.freeze()
        positions = reblinded_mine.matches(tags)
        positions = positions[~session.dummy_at[positions]]
        facts["points_received"] = theirs.received + mine.received
        partner = theirs.summary
        result = linkage_pb2.LinkageResult(
            linkage_id=session.linkage_id, city=self.city, mode=session.plan.mode,
            owner_points=session.points, owner_padded=session.private,
            partner_points=partner.points, partner_padded=partner.padded)
        if session.plan.mode == Mode.LINKAGE_MODE_REVEAL_TO_OWNER:
            matched = session.keys.take(pa.array(session.order[positions]))
            if matched.nbytes + 8 * len(matched) > self.limits.max_response_bytes:
                raise TooLarge(f"{len(matched)} of this city's records matched, more than one "
                               "answer of this node holds; narrow the condition or ask a count")
            result.matched_keys.extend(sorted(matched.to_pylist()))
            result.count, result.exact = len(matched), True
        else:
            _release_count(result, len(positions), session.count_epsilon, partner.count_epsilon)
        facts["groups_returned"] = result.count if result.exact else 1
        return result

    # Helpers ----------------------------------------------------------------------------------

    def _continue(self, messages: Iterator[Message], caller: Caller, role: str, phase: str,
                  refusal: str, facts: dict) -> tuple[Session, Iterator[Message]]:
        """The session the first message names, this phase of it claimed (once: `refusal`
        otherwise), and every message, the first included."""
        messages = iter(messages)
        first = next(messages, None)
        if first is None:
            raise LinkageIncomplete("no points were sent")
        session = self.sessions.get(_linkage_id(first), caller.id, role)
        with session.lock:
            if getattr(session, phase):
                raise LinkageRefused(refusal)
            setattr(session, phase, True)
        facts.update(plan_bytes=session.plan_bytes, linkage_id=session.linkage_id.hex(),
                     linkage_role=role, linkage_mode=mode_name(session.plan.mode),
                     purpose=session.purpose)
        return session, _prepend(first, messages)

    def _signed_chunk(self, session: Session, step: int, index: int,
                      points: bytes) -> linkage_pb2.LinkageChunk:
        chunk = linkage_pb2.LinkageChunk(linkage_id=session.linkage_id, city=self.city,
                                         step=step, index=index, points=points)
        sign(chunk, key=self.trust.signing_key, kid=self.trust.kid)
        return chunk


class _Incoming:
    """One stream of the counterpart's signed points: chunks in index order, then a summary
    that must agree with them."""

    def __init__(self, counterpart: Counterpart, step: int, max_points: int) -> None:
        self.counterpart = counterpart
        self.step = step
        self.max_points = max_points
        self.chunks = 0
        self.received = 0
        self.summary: linkage_pb2.LinkageSummary | None = None
        self._digest = hashlib.sha256()

    def points(self, messages: Iterator[Message]) -> Iterator[bytes]:
        for message in messages:
            yield from self.take(message)

    def take(self, message: Message) -> Iterator[bytes]:
        """The points of a chunk (none for the summary), once the message is checked."""
        kind = message.WhichOneof("item")
        if kind is None:
            raise LinkageRefused("an empty linkage message")
        if self.summary is not None:
            raise LinkageRefused("points arrived after their stream's summary")
        item = getattr(message, kind)
        self.counterpart.check(item, self.step)
        if kind == "summary":
            if (item.points, item.chunks, item.points_sha256) != (
                    self.received, self.chunks, self._digest.hexdigest()):
                raise LinkageIncomplete("the stream's summary does not match its chunks")
            self.summary = item
            return
        if item.index != self.chunks:
            raise LinkageRefused(f"expected chunk {self.chunks}, got another: chunks are taken "
                                 "once each, in order")
        count, rest = divmod(len(item.points), POINT_BYTES)
        if rest or not 0 < count <= CHUNK_POINTS:
            raise LinkageRefused(f"a chunk holds 1 to {CHUNK_POINTS} points of {POINT_BYTES} "
                                 "bytes")
        if self.received + count > self.max_points:
            raise TooLarge(f"more than {self.max_points} points")
        self.chunks += 1
        self.received += count
        self._digest.update(item.points)
        yield item.points

    def require_summary(self) -> None:
        if self.summary is None:
            raise LinkageIncomplete(f"the {_step_word(self.step)} points of "
                                    f"{self.counterpart.city} ended without their summary")


def _release_count(result: linkage_pb2.LinkageResult, count: int, *epsilons: float) -> None:
    """The count, noised with the smallest ε either city allows (none: exact)."""
    allowed = [e for e in epsilons if e > 0]
    if not allowed:
        result.count, result.exact = count, True
        return
    scale = 1 / min(allowed)
    result.count = noisy_vector([count], scale)[0]
    result.exact = False
    result.count_stddev = noise_stddev([scale])
    result.count_half_width_95 = half_width([scale])


def _random_order(n: int) -> np.ndarray:
    """A uniformly random permutation of range(n), from the operating system's generator."""
    if n == 0:
        return np.empty(0, dtype=np.int64)
    draws = np.frombuffer(secrets.token_bytes(8 * n), dtype=np.uint64)
    return np.argsort(draws, kind="stable").astype(np.int64)


def _linkage_id(message: Message) -> bytes:
    kind = message.WhichOneof("item")
    if kind is None:
        raise LinkageRefused("an empty linkage message")
    return getattr(message, kind).linkage_id


def _step(message: Message) -> int:
    kind = message.WhichOneof("item")
    if kind is None:
        raise LinkageRefused("an empty linkage message")
    return getattr(message, kind).step


def _prepend(first: Message, rest: Iterator[Message]) -> Iterator[Message]:
    yield first
    yield from rest


def _step_word(step: int) -> str:
    return "blinded" if step == Step.LINKAGE_STEP_BLINDED else "re-blinded"
