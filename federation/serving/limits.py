"""How much a server takes on at once: the size of a request, and the calls in progress, all
callers together and per caller, so that one member cannot starve the others.

gRPC can enforce a message size and a number of calls itself, but it refuses before any
interceptor runs, so such a refusal would reach no audit record. A server therefore sets gRPC's
own limits to an outer bound far above its configured ones (`grpc_receive_limit`,
`grpc_concurrency_limit`) and enforces the configured limits here, in an interceptor placed
inside the error translator (whose observer records every refusal) and before the guard (so an
oversized or surplus call is refused before its token is checked). Only what passes even gRPC's
outer bound is refused unrecorded, by gRPC itself.

A call is counted from the moment a worker thread takes it up until it ends; streams count too,
for as long as they are open (a health Watch holds a thread). The caller is the member its TLS
certificate names; calls whose certificate names no member share one allowance (the guard then
refuses them)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator

import grpc

from federation.errors import CityfedError, InvalidArgument, Overloaded, TooLarge, TooManyCalls
from federation.serving.guard import PeerIdentifier, TrustState

# gRPC's own limits: this many times the configured ones, and at least so many calls.
GRPC_BOUND_FACTOR = 4
GRPC_MIN_CONCURRENT_RPCS = 1024

# identify(context) -> the caller's member id, or None when its certificate names no member
Identify = Callable[[grpc.ServicerContext], str | None]


def grpc_receive_limit(max_request_bytes: int) -> int:
    """The largest message gRPC reads at all; a larger one it refuses, unrecorded."""
    return GRPC_BOUND_FACTOR * max_request_bytes


def grpc_concurrency_limit(max_calls: int) -> int:
    """The most calls gRPC holds at once, running or waiting for a thread; beyond, it refuses
    unrecorded."""
    return max(GRPC_MIN_CONCURRENT_RPCS, GRPC_BOUND_FACTOR * max_calls)


def member_of(trust: TrustState) -> Identify:
    """The member a connection's certificate names, or None (the guard refuses such calls)."""
    peers = PeerIdentifier(trust)

    def identify(context: grpc.ServicerContext) -> str | None:
        try:
            return peers(context).member.id
        except CityfedError:
            return None

    return identify


class _Unreadable:
    """What a request becomes when it is over the limit or does not parse: refused by the
    interceptor, never seen by a handler."""

    __slots__ = ("parsed", "size")

    def __init__(self, size: int, parsed: bool) -> None:
        self.size = size
        self.parsed = parsed


class CallLimits(grpc.ServerInterceptor):
    def __init__(self, *, max_request_bytes: int, max_calls: int, max_calls_per_caller: int,
                 identify: Identify, server: str) -> None:
        self.max_request_bytes = max_request_bytes
        self.max_calls = max_calls
        self.max_calls_per_caller = max_calls_per_caller
        self._identify = identify
        self._server = server
        self._lock = threading.Lock()
        self._total = 0
        self._per_caller: Counter[str | None] = Counter()

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        deserializer = self._deserializer(handler.request_deserializer)
        make = {
            "unary_unary": grpc.unary_unary_rpc_method_handler,
            "unary_stream": grpc.unary_stream_rpc_method_handler,
            "stream_unary": grpc.stream_unary_rpc_method_handler,
            "stream_stream": grpc.stream_stream_rpc_method_handler,
        }
        for kind, new_handler in make.items():
            behaviour = getattr(handler, kind)
            if behaviour is not None:
                wrapped = (self._unary(behaviour) if kind == "unary_unary" else
                           self._stream(method, behaviour, handler.request_streaming,
                                        handler.response_streaming))
                return new_handler(wrapped, request_deserializer=deserializer,
                                   response_serializer=handler.response_serializer)
        raise TypeError("unknown handler kind")

    # Admission ----------------------------------------------------------------------------------

    def _admit(self, caller: str | None) -> None:
        with self._lock:
            if self._per_caller[caller] >= self.max_calls_per_caller:
                who = caller or "a caller that is not a member"
                raise TooManyCalls(
                    f"{who} already has {self.max_calls_per_caller} calls in progress at "
                    f"{self._server}, the most one caller may have; retry when one has finished")
            if self._total >= self.max_calls:
                raise Overloaded(f"{self._server} is answering {self.max_calls} calls, the most "
                                 "it takes at once; retry shortly")
            self._total += 1
            self._per_caller[caller] += 1

    def _release(self, caller: str | None) -> None:
        with self._lock:
            self._total -= 1
            self._per_caller[caller] -= 1
            if not self._per_caller[caller]:
                del self._per_caller[caller]

    def _check(self, request) -> None:
        if isinstance(request, _Unreadable):
            if not request.parsed:
                raise InvalidArgument("the request is not a valid message of this method")
            raise TooLarge(f"the request is {request.size} bytes; {self._server} accepts at most "
                           f"{self.max_request_bytes}")

    def _deserializer(self, inner):
        limit = self.max_request_bytes

        def deserialize(data: bytes):
            if len(data) > limit:
                return _Unreadable(len(data), parsed=True)
            if inner is None:
                return data
            try:
                return inner(data)
            except Exception:  # refused (and recorded) by the interceptor, not by gRPC
                return _Unreadable(len(data), parsed=False)

        return deserialize

    # Wrapping -----------------------------------------------------------------------------------

    def _unary(self, behaviour):
        """A refusal is raised to the error translator, which records and answers it."""

        def run(request, context):
            caller = self._identify(context)
            self._check(request)
            self._admit(caller)
            try:
                return behaviour(request, context)
            finally:
                self._release(caller)

        return run

    def _stream(self, method, behaviour, request_streaming, response_streaming):
        """A refusal is raised to the error translator, which records and answers it: before
        the first message for an oversized or unreadable request, where it arrives for a
        message of a request stream."""

        def admit(request_or_iterator, context):
            caller = self._identify(context)
            if not request_streaming:
                self._check(request_or_iterator)
            self._admit(caller)
            if request_streaming:
                request_or_iterator = checked(request_or_iterator)
            return caller, request_or_iterator

        def checked(messages: Iterator) -> Iterator:
            for message in messages:
                self._check(message)
                yield message

        def run_stream(request_or_iterator, context):
            caller, request_or_iterator = admit(request_or_iterator, context)
            try:
                yield from behaviour(request_or_iterator, context)
            finally:
                self._release(caller)

        def run_unary(request_iterator, context):
            caller, request_iterator = admit(request_iterator, context)
            try:
                return behaviour(request_iterator, context)
            finally:
                self._release(caller)

        return run_stream if response_streaming else run_unary
