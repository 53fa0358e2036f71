"""Who may call what on a node. Reading data needs a request token bound to the exact plan
bytes, this city, a registered purpose and the caller's certificate; everything else needs a
member's certificate. A method missing from METHOD_POLICY is refused."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from federation.serving import call_facts
from federation.serving.guard import (
    HEALTH_AND_REFLECTION,
    Guard,
    PeerIdentifier,
    Requirement,
    TrustState,
    current_caller,
)
from federation.trust.tokens import TokenClaims, bearer_token, verify_token
from node.policy import Caller

METHOD_POLICY: dict[str, Requirement] = {
    "/cityfed.v1.NodeService/GetNodeInfo": Requirement.MEMBER,
    "/cityfed.v1.NodeService/ListDatasets": Requirement.MEMBER,
    "/cityfed.v1.NodeService/GetAuditCheckpoint": Requirement.MEMBER,
    "/cityfed.v1.NodeService/Aggregate": Requirement.REQUEST_TOKEN,
    "/cityfed.v1.NodeService/OpenLinkage": Requirement.REQUEST_TOKEN,
    # The session OpenLinkage opened names its caller; these continue it.
    "/cityfed.v1.NodeService/ReblindLinkage": Requirement.MEMBER,
    "/cityfed.v1.NodeService/FinishLinkage": Requirement.MEMBER,
    **{method: Requirement.MEMBER for method in HEALTH_AND_REFLECTION},
}
# The request bytes each token-guarded method's plan hash covers.
TOKEN_BOUND_BYTES: dict[str, Callable[[object], bytes]] = {
    "/cityfed.v1.NodeService/Aggregate": lambda request: request.plan,
    "/cityfed.v1.NodeService/OpenLinkage": lambda request: request.plan,
}

__all__ = ["METHOD_POLICY", "Authenticated", "current_caller", "node_guard"]


@dataclass(frozen=True)
class Authenticated:
    caller: Caller
    token: TokenClaims | None = None

    @property
    def purpose(self) -> str | None:
        return self.token.purpose if self.token else None


def node_guard(trust: TrustState, city: str,
               remember_jti: Callable[[str, int], bool]) -> Guard:
    identify = PeerIdentifier(trust)

    def authenticate(method, requirement, request, context) -> Authenticated:
        peer = identify(context)
        caller = Caller(peer.member.id, peer.member.role, tuple(peer.member.groups))
        if requirement is Requirement.MEMBER:
            return Authenticated(caller)
        manifest = trust.manifest
        claims = verify_token(
            _request_token(context), audience=city, plan_bytes=TOKEN_BOUND_BYTES[method](request),
            peer_member=caller.id, peer_x5t=peer.certificate_x5t,
            lookup_key=lambda kid, at: _public_key(manifest, kid, at),
            purpose_registered=lambda purpose: manifest.purpose(purpose) is not None,
            remember_jti=remember_jti,
        )
        facts = call_facts.current()
        facts["jti"], facts["purpose"] = claims.jti, claims.purpose
        return Authenticated(caller, claims)

    return Guard(METHOD_POLICY, authenticate)


def _public_key(manifest, kid: str, at):
    found = manifest.signing_key(kid, at)
    return None if found is None else (found[0].id, found[1].public_key)


def _request_token(context) -> str:
    return bearer_token([v for k, v in context.invocation_metadata() if k == "authorization"])
