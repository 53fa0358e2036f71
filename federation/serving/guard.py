"""Deny by default, for every server cityfed runs: each server lists every method it serves in
a method table; a method missing from it is refused. The caller is the manifest member whose
certificate the mutual-TLS connection presents. What else a method needs (a request token, for
a node's data) is the server's own `authenticate` function."""

from __future__ import annotations

import contextvars
import enum
import threading
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from federation.errors import CityfedError
from federation.serving import call_facts
from federation.trust.manifest import Manifest, ManifestMember
from federation.trust.pki import certificate_fingerprint, x5t_s256
from federation.trust.tokens import Unauthenticated

MAX_REMEMBERED_CERTIFICATES = 1024

# The methods of the standard services every cityfed server carries.
HEALTH_AND_REFLECTION = (
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/grpc.health.v1.Health/List",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
)


class Requirement(enum.Enum):
    MEMBER = "a client certificate of a manifest member"
    REQUEST_TOKEN = "a member certificate and a request token bound to the request"


class MethodNotAllowed(CityfedError):
    status = grpc.StatusCode.PERMISSION_DENIED
    reason = "METHOD_NOT_ALLOWED"


class TrustState:
    """The manifest a server currently holds; replaced as a whole when a newer one is accepted.
    A reader takes `manifest` once and uses that one for the whole call."""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest

    def replace(self, manifest: Manifest) -> Manifest:
        """Hold `manifest` from now on (already verified against the held one); returns the
        one it replaces."""
        previous, self.manifest = self.manifest, manifest
        return previous


@dataclass(frozen=True)
class Peer:
    member: ManifestMember
    certificate_x5t: str  # RFC 8705 thumbprint of the connection's client certificate


class PeerIdentifier:
    """Maps the connection's client certificate to a manifest member, remembering thumbprints."""

    def __init__(self, trust: TrustState) -> None:
        self._trust = trust
        self._thumbprints: dict[bytes, tuple[str, str]] = {}
        self._lock = threading.Lock()

    def __call__(self, context: grpc.ServicerContext) -> Peer:
        certificates = context.auth_context().get("x509_pem_cert")
        if not certificates:
            raise Unauthenticated("no client certificate: connect with mutual TLS")
        pem = certificates[0]
        with self._lock:
            known = self._thumbprints.get(pem)
        if known is None:
            known = (certificate_fingerprint(pem), x5t_s256(pem))
            with self._lock:
                if len(self._thumbprints) >= MAX_REMEMBERED_CERTIFICATES:
                    self._thumbprints.clear()
                self._thumbprints[pem] = known
        fingerprint, x5t = known
        call_facts.current()["peer_fingerprint"] = fingerprint
        member = self._trust.manifest.member_by_fingerprint(fingerprint)
        if member is None:
            raise Unauthenticated("the client certificate is not a member's in the manifest")
        call_facts.current()["caller"] = member.id
        return Peer(member, x5t)


# authenticate(method, requirement, request_or_iterator, context) -> what the handler may read
Authenticate = Callable[[str, Requirement, object, grpc.ServicerContext], object]

_current: contextvars.ContextVar[object] = contextvars.ContextVar("cityfed_caller")


def current_caller():
    """What the guard established about the caller of the RPC being handled."""
    return _current.get()


class Guard(grpc.ServerInterceptor):
    """Runs `authenticate` before every handler; a refusal is raised to the error translator
    (outermost on every cityfed server), which records and answers it, for streams too."""

    def __init__(self, method_policy: dict[str, Requirement], authenticate: Authenticate):
        self._method_policy = method_policy
        self._authenticate = authenticate

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        requirement = self._method_policy.get(method)
        if requirement is None:
            def refuse(request, context):
                raise MethodNotAllowed(f"{method} is not open to callers")
            return _wrap(handler, refuse)
        return _wrap(handler, lambda request, context: self._authenticate(
            method, requirement, request, context))


def _wrap(handler: grpc.RpcMethodHandler, authenticate) -> grpc.RpcMethodHandler:
    """The same handler, run only after `authenticate` succeeded, with the caller set."""

    def guarded(behaviour):
        def run(request_or_iterator, context):
            token = _current.set(authenticate(request_or_iterator, context))
            try:
                return behaviour(request_or_iterator, context)
            finally:
                _current.reset(token)
        return run

    def guarded_stream(behaviour):
        def run(request_or_iterator, context):
            token = _current.set(authenticate(request_or_iterator, context))
            try:
                yield from behaviour(request_or_iterator, context)
            finally:
                _current.reset(token)
        return run

    kinds = {
        "unary_unary": (grpc.unary_unary_rpc_method_handler, guarded),
        "unary_stream": (grpc.unary_stream_rpc_method_handler, guarded_stream),
        "stream_unary": (grpc.stream_unary_rpc_method_handler, guarded),
        "stream_stream": (grpc.stream_stream_rpc_method_handler, guarded_stream),
    }
    for kind, (make, guard) in kinds.items():
        behaviour = getattr(handler, kind)
        if behaviour is not None:
            return make(guard(behaviour), request_deserializer=handler.request_deserializer,
                        response_serializer=handler.response_serializer)
    raise TypeError("unknown handler kind")
