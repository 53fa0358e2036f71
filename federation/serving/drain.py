"""Stopping a server without lying to its callers: once it drains, a new call is refused with
UNAVAILABLE (SHUTTING_DOWN), and the server can wait until the calls under way have ended.

gRPC's own `server.stop(grace)` also refuses new calls, but before any interceptor runs (so
without an audit record), and when the grace is over it cancels the calls still running while
their handlers go on, so that a load could commit after its caller was told it failed. Here the
refusal is raised inside the error translator, which records it like any other; the server's
owner decides what to stop when the grace is over and waits for those calls to answer before
stopping gRPC. Health and reflection are never refused nor waited for: health is how a
supervisor sees the server going NOT_SERVING, and a Watch stays open until gRPC stops.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import grpc

from federation.errors import ShuttingDown
from federation.serving.guard import HEALTH_AND_REFLECTION
from federation.serving.limits import Identify

_MAKE = {
    "unary_unary": grpc.unary_unary_rpc_method_handler,
    "unary_stream": grpc.unary_stream_rpc_method_handler,
    "stream_unary": grpc.stream_unary_rpc_method_handler,
    "stream_stream": grpc.stream_stream_rpc_method_handler,
}


class Drain(grpc.ServerInterceptor):
    """Counts the calls under way and, once `begin` is called, refuses new ones. `identify`
    names the caller of a refused call for its record (see federation.serving.limits.member_of)."""

    def __init__(self, *, server: str, identify: Identify | None = None) -> None:
        self._server = server
        self._identify = identify
        self._changed = threading.Condition()
        self._calls = 0
        self._draining = False

    @property
    def calls(self) -> int:
        return self._calls

    def begin(self) -> None:
        with self._changed:
            self._draining = True

    def wait_idle(self, timeout: float, hurry: threading.Event | None = None) -> bool:
        """Wait until no call is under way, at most `timeout` seconds or until `hurry` is set;
        True when none is."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._calls:
                left = deadline - time.monotonic()
                if left <= 0 or (hurry is not None and hurry.is_set()):
                    return False
                self._changed.wait(min(left, 0.1))
        return True

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or handler_call_details.method in HEALTH_AND_REFLECTION:
            return handler
        for kind, make in _MAKE.items():
            behaviour = getattr(handler, kind)
            if behaviour is not None:
                wrap = self._stream if handler.response_streaming else self._unary
                return make(wrap(behaviour), request_deserializer=handler.request_deserializer,
                            response_serializer=handler.response_serializer)
        raise TypeError("unknown handler kind")

    def _enter(self, context: grpc.ServicerContext) -> None:
        with self._changed:
            if not self._draining:
                self._calls += 1
                return
        if self._identify is not None:
            self._identify(context)  # the record names the caller
        raise ShuttingDown(f"{self._server} is shutting down and takes no new calls; "
                           "retry once it is back")

    def _leave(self) -> None:
        with self._changed:
            self._calls -= 1
            self._changed.notify_all()

    def _unary(self, behaviour):
        def run(request, context):
            self._enter(context)
            try:
                return behaviour(request, context)
            finally:
                self._leave()

        return run

    def _stream(self, behaviour):
        def run(request, context) -> Iterator:
            self._enter(context)
            try:
                yield from behaviour(request, context)
            finally:
                self._leave()

        return run
