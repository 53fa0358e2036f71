"""One error hierarchy for the whole project, each error with the gRPC status it becomes.

Code raises these; exactly one place per server (`federation.serving.grpc_errors`) turns them into a
status and a public message. Anything else that escapes becomes INTERNAL with a generic message.
"""

from __future__ import annotations

from typing import ClassVar

import grpc
from google.protobuf.message import Message
from google.rpc import error_details_pb2


class CityfedError(Exception):
    """Base error. The message is shown to the caller, so it must never carry data."""

    status: ClassVar[grpc.StatusCode] = grpc.StatusCode.INTERNAL
    reason: ClassVar[str] = "INTERNAL"

    def details(self) -> list[Message]:
        """google.rpc detail messages sent beside the ErrorInfo; none by default."""
        return []


class InvalidQuery(CityfedError):
    """The question is outside the supported subset, or refers to what does not exist."""

    status = grpc.StatusCode.INVALID_ARGUMENT
    reason = "INVALID_QUERY"


class InvalidArgument(CityfedError):
    """A request field is malformed."""

    status = grpc.StatusCode.INVALID_ARGUMENT
    reason = "INVALID_ARGUMENT"


class PolicyDenied(CityfedError):
    """The data owner's policy refuses this caller, purpose or column; names no data."""

    status = grpc.StatusCode.PERMISSION_DENIED
    reason = "POLICY_DENIED"


class CallerNotServed(CityfedError):
    """A gateway asks the cities under its own member's identity, so it serves only the members
    it was started for: serving another would lend that member its access."""

    status = grpc.StatusCode.PERMISSION_DENIED
    reason = "CALLER_NOT_SERVED"


class TooLarge(CityfedError):
    """A request or a result is larger than the configured limit."""

    status = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "TOO_LARGE"


class BudgetExhausted(CityfedError):
    """The caller's privacy budget for this purpose and period cannot pay for the question."""

    status = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "PRIVACY_BUDGET_EXHAUSTED"

    def __init__(self, message: str, *, subject: str) -> None:
        super().__init__(message)
        self.subject = subject  # caller/purpose/period

    def details(self) -> list[Message]:
        violation = error_details_pb2.QuotaFailure.Violation(
            subject=self.subject, description=str(self))
        return [error_details_pb2.QuotaFailure(violations=[violation])]


class Overloaded(CityfedError):
    """The server is answering as many calls as it takes at once; retry shortly."""

    status = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "OVERLOADED"


class TooManyCalls(CityfedError):
    """This caller already has as many calls in progress as one caller may have, so that no
    caller can starve the others; retry when one of them has finished."""

    status = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "TOO_MANY_CALLS"


class DeadlineExceeded(CityfedError):
    status = grpc.StatusCode.DEADLINE_EXCEEDED
    reason = "DEADLINE_EXCEEDED"


class Cancelled(CityfedError):
    status = grpc.StatusCode.CANCELLED
    reason = "CANCELLED"


class IncompleteAnswer(CityfedError):
    """A complete answer was required and at least one city did not answer."""

    status = grpc.StatusCode.FAILED_PRECONDITION
    reason = "INCOMPLETE_ANSWER"


class IngestError(CityfedError):
    """A file could not be loaded; the message names the file, row and column."""

    status = grpc.StatusCode.INVALID_ARGUMENT
    reason = "INGEST_REJECTED"


class FileMissing(CityfedError):
    status = grpc.StatusCode.NOT_FOUND
    reason = "FILE_NOT_FOUND"


class LoadInProgress(CityfedError):
    status = grpc.StatusCode.ABORTED
    reason = "LOAD_IN_PROGRESS"


class ConfigError(CityfedError):
    """A configuration file is missing a key or holds a bad value; names the file and key."""

    status = grpc.StatusCode.FAILED_PRECONDITION
    reason = "BAD_CONFIG"


class StoreUnavailable(CityfedError):
    """The city's database cannot be opened or written (a full disk, an I/O error)."""

    status = grpc.StatusCode.UNAVAILABLE
    reason = "STORE_UNAVAILABLE"


class ReadOnlyStore(CityfedError):
    """The node reads the city's own engine (Spark) and never writes it: loads and the data's
    backups are the city's own pipeline's."""

    status = grpc.StatusCode.FAILED_PRECONDITION
    reason = "READ_ONLY_STORE"


class StateUnavailable(CityfedError):
    """The node cannot write its own state: the memory of token ids or the privacy budget
    (a full disk, an I/O error). Nothing is answered until it can; retry later."""

    status = grpc.StatusCode.UNAVAILABLE
    reason = "STATE_UNAVAILABLE"


class LinkageRefused(CityfedError):
    """A linkage message that is not what the session allows: a chunk the counterpart's node did
    not sign for this linkage, one out of order, or a second pass over a set (docs/linkage.md)."""

    status = grpc.StatusCode.PERMISSION_DENIED
    reason = "LINKAGE_REFUSED"


class LinkageReplayed(CityfedError):
    """A linkage id this node has already answered: each is answered once, ever."""

    status = grpc.StatusCode.PERMISSION_DENIED
    reason = "LINKAGE_REPLAYED"


class LinkageSessionUnknown(CityfedError):
    """No open linkage session of this caller with this id: never opened, expired or finished."""

    status = grpc.StatusCode.NOT_FOUND
    reason = "LINKAGE_SESSION_UNKNOWN"


class NoCheckpoint(CityfedError):
    """The audit log has no signed checkpoint yet."""

    status = grpc.StatusCode.NOT_FOUND
    reason = "NO_CHECKPOINT"


class RecordsArchived(CityfedError):
    """The records a consistency proof needs were archived away from the node's log folder."""

    status = grpc.StatusCode.FAILED_PRECONDITION
    reason = "RECORDS_ARCHIVED"


class LinkageIncomplete(CityfedError):
    """A linkage stream that ended without its summary, or whose counts do not agree."""

    status = grpc.StatusCode.FAILED_PRECONDITION
    reason = "LINKAGE_INCOMPLETE"


class ShuttingDown(CityfedError):
    """The server is shutting down: it takes no new call, and a call it could not finish within
    its grace was stopped (a query interrupted, a load rolled back). Retry once it is back."""

    status = grpc.StatusCode.UNAVAILABLE
    reason = "SHUTTING_DOWN"


class DatabaseInUse(CityfedError):
    """Another process has the city's database open: its node, or a load run without one."""

    status = grpc.StatusCode.UNAVAILABLE
    reason = "DATABASE_IN_USE"


class LoadUnconfirmed(CityfedError):
    """The node stopped answering during a load: it either committed every row or none."""

    status = grpc.StatusCode.UNAVAILABLE
    reason = "LOAD_UNCONFIRMED"
