"""The one place where errors become gRPC statuses, for every server cityfed runs.

A `CityfedError` becomes its status with its message and an ErrorInfo detail carrying a stable
reason; anything else is logged here with its traceback and becomes INTERNAL with a generic
message. Callers never see UNKNOWN or a traceback.

It is also where a call's outcome is known, so a server's observer (a node's audit log) sees
every call here, granted or refused, before the answer (or a stream's status) leaves; if the
observer fails, the caller gets its error instead of the answer.
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
from typing import Protocol

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from federation.errors import CityfedError
from federation.serving import call_facts

log = logging.getLogger(__name__)

ERROR_DOMAIN = "cityfed.org"


def abort(context: grpc.ServicerContext, error: CityfedError) -> None:
    """Abort the call with the error's status, message and reason. Always raises."""
    details = []
    for detail in (error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN),
                   *error.details()):
        packed = any_pb2.Any()
        packed.Pack(detail)
        details.append(packed)
    status = status_pb2.Status(
        code=getattr(code_pb2, error.status.name), message=str(error), details=details
    )
    context.abort_with_status(rpc_status.to_status(status))


def error_reason(error: grpc.RpcError) -> str:
    """The stable ErrorInfo reason of a cityfed error, or "" when it carries none."""
    status = rpc_status.from_call(error) if hasattr(error, "trailing_metadata") else None
    for detail in status.details if status else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info.reason
    return ""


class CallObserver(Protocol):
    def finish(self, method: str, context: grpc.ServicerContext, response, error,
               facts: dict, started: float) -> None:
        """Called once per call with its response (a stream's summary, or None) or its error,
        before the answer leaves. Raising a CityfedError replaces the answer with that error."""


class CallMeter(Protocol):
    def observe(self, method: str, facts: dict, error, started: float) -> None:
        """Called once per call with the error it ends with (None: answered), after the
        observer; must not raise."""


class ErrorTranslator(grpc.ServerInterceptor):
    """Wraps every handler so that exceptions leave as proper statuses, and the observer sees
    each call once with its outcome: a unary or client-streaming call with its response, a
    server-streaming call with the summary its servicer left in the call's facts under
    STREAM_SUMMARY (or none), after its last message and before its status. The meter (metrics)
    then counts the call with the status it leaves with."""

    def __init__(self, observer: CallObserver | None = None,
                 meter: CallMeter | None = None) -> None:
        self._observer = observer
        self._meter = meter

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        for kind, make in _HANDLER_KINDS.items():
            inner = getattr(handler, kind)
            if inner is None:
                continue
            wrap = self._stream if handler.response_streaming else self._unary
            return make(wrap(method, inner), request_deserializer=handler.request_deserializer,
                        response_serializer=handler.response_serializer)
        raise TypeError("unknown handler kind")

    def _unary(self, method: str, inner):
        def translated(request, context):
            started = time.perf_counter()
            facts_token = call_facts.begin()
            try:
                response, error = _outcome(inner, request, context, method)
                response, error = self._observe(method, context, response, error, started)
            finally:
                call_facts.end(facts_token)
            if error is not None:
                abort(context, error)
            return response

        return translated

    def _stream(self, method: str, inner):
        def translated(request, context):
            started = time.perf_counter()
            facts_token = call_facts.begin()
            error = None
            try:
                try:
                    yield from inner(request, context)
                except CityfedError as refusal:
                    _log_refusal(method, refusal)
                    error = refusal
                except Exception:
                    if _already_aborted(context):
                        raise
                    _log_unexpected("%s failed", method)
                    error = CityfedError("internal error")
                summary = call_facts.current().get(STREAM_SUMMARY) if error is None else None
                _, error = self._observe(method, context, summary, error, started)
            finally:
                call_facts.end(facts_token)
            if error is not None:
                abort(context, error)

        return translated

    def _observe(self, method, context, response, error, started):
        """(response, error) as the caller gets them once the observer has seen the call."""
        response, error = self._record(method, context, response, error, started)
        if self._meter is not None:
            try:
                self._meter.observe(method, call_facts.current(), error, started)
            except Exception:
                _log_unexpected("%s: the metrics failed", method)
        return response, error

    def _record(self, method, context, response, error, started):
        if self._observer is None:
            return response, error
        try:
            self._observer.finish(method, context, response, error, call_facts.current(),
                                  started)
        except CityfedError as failure:
            log.error("%s: %s", method, failure)
            return None, failure
        except Exception:
            _log_unexpected("%s: the observer failed", method)
            return None, CityfedError("internal error")
        return response, error


# What a server-streaming servicer leaves in the call's facts for the observer: the message
# that sums up what the stream sent (the receipt covers it).
STREAM_SUMMARY = "stream_summary"

_HANDLER_KINDS = {
    "unary_unary": grpc.unary_unary_rpc_method_handler,
    "unary_stream": grpc.unary_stream_rpc_method_handler,
    "stream_unary": grpc.stream_unary_rpc_method_handler,
    "stream_stream": grpc.stream_stream_rpc_method_handler,
}


def _log_refusal(method: str, error: CityfedError) -> None:
    """The reason always; the message only when the caller cannot have put text of its own in
    it: a malformed request's message may repeat a name the caller wrote, and a name can be
    a resident's ID written in the wrong quotes."""
    if error.status in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND):
        log.info("%s refused: %s", method, error.reason)
    else:
        log.info("%s refused: %s: %s", method, error.reason, error)


def _outcome(inner, request, context, method: str):
    """(response, None) or (None, the error to answer with)."""
    try:
        return inner(request, context), None
    except CityfedError as error:
        _log_refusal(method, error)
        return None, error
    except Exception:
        if _already_aborted(context):
            raise
        _log_unexpected("%s failed", method)
        return None, CityfedError("internal error")


def _log_unexpected(message: str, *args) -> None:
    """Log the exception being handled by its class and where it was raised, never by its
    text: an exception's text can quote a value (DuckDB's quotes the row it failed on)."""
    error = sys.exc_info()[1]
    frames = "".join(traceback.format_tb(error.__traceback__)) if error else ""
    log.error(message + ": %s\nTraceback (most recent call last):\n%s", *args,
              type(error).__name__, frames.rstrip("\n"))


def _already_aborted(context: grpc.ServicerContext) -> bool:
    code = context.code()
    return code is not None and code != grpc.StatusCode.OK
