"""The one place where errors become gRPC statuses, for every server cityfed runs.

A `CityfedError` becomes its status with its message and an ErrorInfo detail carrying a stable
reason; anything else is logged here with its traceback and becomes INTERNAL with a generic
message. Callers never see UNKNOWN or a traceback.
"""

from __future__ import annotations

import logging

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from federation.errors import CityfedError

log = logging.getLogger(__name__)

ERROR_DOMAIN = "cityfed.org"


def abort(context: grpc.ServicerContext, error: CityfedError) -> None:
    """Abort the call with the error's status, message and reason. Always raises."""
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN))
    status = status_pb2.Status(
        code=getattr(code_pb2, error.status.name), message=str(error), details=[info]
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


class ErrorTranslator(grpc.ServerInterceptor):
    """Wraps every unary handler so that exceptions leave as proper statuses."""

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = handler_call_details.method
        inner = handler.unary_unary

        def translated(request, context):
            try:
                return inner(request, context)
            except CityfedError as error:
                log.info("%s refused: %s: %s", method, error.reason, error)
                abort(context, error)
            except Exception:
                if _already_aborted(context):
                    raise
                log.exception("%s failed", method)
                abort(context, CityfedError("internal error"))

        return grpc.unary_unary_rpc_method_handler(
            translated,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _already_aborted(context: grpc.ServicerContext) -> bool:
    code = context.code()
    return code is not None and code != grpc.StatusCode.OK
