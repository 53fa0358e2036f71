"""How `cityfed` ends: an error printed for a person, and the exit code that says what kind."""

from __future__ import annotations

import grpc

from federation.errors import CityfedError, IncompleteAnswer
from federation.serving.grpc_errors import error_reason

EXIT_INCOMPLETE = 3


def report_error(error: CityfedError | grpc.RpcError, err) -> int:
    """Print an error for a person; exit 3 for an incomplete answer, 1 for anything else."""
    if isinstance(error, grpc.RpcError):
        code, message = error.code(), error.details()
    else:
        code, message = error.status, str(error)
    print(f"error: {code.name}: {message}", file=err)
    incomplete = isinstance(error, IncompleteAnswer) or (
        isinstance(error, grpc.RpcError) and error_reason(error) == IncompleteAnswer.reason)
    return EXIT_INCOMPLETE if incomplete else 1
