"""Request tokens: short-lived JWTs that bind one question to one city, one purpose, the exact
plan bytes and the caller's TLS certificate.

Profile (documented for integrators in docs/tokens.md):
- header: alg "EdDSA" (pinned by the verifier; nothing else is accepted), typ "JWT" (checked,
  case-insensitively), kid: the caller's key id as the signed manifest lists it. jku, x5u, jwk
  and x5c are never read.
- claims: iss and sub (the caller's member id), aud (the target city's member id, a string:
  one token per city, docs/tokens.md says why), iat, nbf,
  exp (exp - iat at most 300 s), jti (unique; a node refuses one it has seen, also after a
  restart), purpose (registered in the manifest), plan_sha256 (hex SHA-256 of the exact plan
  bytes the node receives), cnf {"x5t#S256": base64url SHA-256 of the caller's TLS certificate}
  (RFC 8705), which must be the certificate of the connection the token arrives on.
- verification allows at most 60 s of clock skew.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import grpc
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from federation.errors import CityfedError
from federation.query.plan import plan_hash
from federation.trust.canonical import strict_loads
from federation.trust.keys import b64url_decode

ALGORITHM = "EdDSA"
MAX_LIFETIME_SECONDS = 300
LIFETIME_SECONDS = 120
LEEWAY_SECONDS = 60
MAX_JTI_CHARS = 128
TYPE = "JWT"
REQUIRED_CLAIMS = ["iss", "sub", "aud", "iat", "nbf", "exp", "jti", "purpose", "plan_sha256",
                   "cnf"]
BEARER = "bearer"


class Unauthenticated(CityfedError):
    """No credential, or one that does not verify. The message says which rule failed."""

    status = grpc.StatusCode.UNAUTHENTICATED
    reason = "UNAUTHENTICATED"


@dataclass(frozen=True)
class TokenClaims:
    caller: str
    audience: str
    purpose: str
    jti: str
    expires_at: int


def mint_token(*, key: Ed25519PrivateKey, kid: str, caller: str, audience: str, purpose: str,
               plan_bytes: bytes, certificate_x5t: str, now: float | None = None,
               lifetime: int = LIFETIME_SECONDS) -> str:
    issued = int(time.time() if now is None else now)
    claims = {
        "iss": caller, "sub": caller, "aud": audience,
        "iat": issued, "nbf": issued, "exp": issued + lifetime,
        "jti": secrets.token_urlsafe(16),
        "purpose": purpose,
        "plan_sha256": plan_hash(plan_bytes),
        "cnf": {"x5t#S256": certificate_x5t},
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": kid})


# Looks up a key id in the manifest: (member id, public key) when it is valid at that moment.
KeyLookup = Callable[[str, datetime], "tuple[str, object] | None"]
# Remembers a jti until it expires; False when it was already seen.
ReplayGuard = Callable[[str, int], bool]


def verify_token(token: str, *, audience: str, plan_bytes: bytes, peer_member: str,
                 peer_x5t: str, lookup_key: KeyLookup, purpose_registered: Callable[[str], bool],
                 remember_jti: ReplayGuard, now: float | None = None) -> TokenClaims:
    """Verify a request token arriving on a connection from `peer_member` whose certificate has
    thumbprint `peer_x5t`, carrying `plan_bytes`. Raises Unauthenticated naming the failed rule."""
    now = time.time() if now is None else now
    header = _unverified_header(token)
    if header.get("alg") != ALGORITHM:
        raise Unauthenticated(f"the request token must be signed with {ALGORITHM}")
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.upper() != TYPE:
        raise Unauthenticated(f"the request token's header must say typ {TYPE!r}")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise Unauthenticated("the request token names no key id (kid)")
    found = lookup_key(kid, datetime.fromtimestamp(now, UTC))
    if found is None:
        raise Unauthenticated("the request token's key id is not a current key in the manifest")
    member, public_key = found
    claims = _decode(token, public_key, audience=audience, issuer=member, now=now)

    if claims["sub"] != member:
        raise Unauthenticated("the request token's subject is not its issuer")
    if member != peer_member:
        raise Unauthenticated("the request token was issued by another member than the caller")
    if not isinstance(claims["iat"], int | float) or not isinstance(claims["exp"], int | float):
        raise Unauthenticated("the request token's times must be numbers")
    if claims["exp"] - claims["iat"] > MAX_LIFETIME_SECONDS:
        raise Unauthenticated(f"the request token lives longer than {MAX_LIFETIME_SECONDS} s")
    purpose = claims["purpose"]
    if not isinstance(purpose, str):
        raise Unauthenticated("the request token's purpose must be a string")
    if not purpose_registered(purpose):
        raise Unauthenticated("the request token's purpose is not registered in the manifest")
    if claims["plan_sha256"] != plan_hash(plan_bytes):
        raise Unauthenticated("the plan is not the one the request token was signed for")
    confirmation = claims["cnf"]
    if not isinstance(confirmation, dict) or not isinstance(confirmation.get("x5t#S256"), str):
        raise Unauthenticated("the request token's cnf claim must hold the caller's certificate "
                              "thumbprint as x5t#S256")
    if confirmation["x5t#S256"] != peer_x5t:
        raise Unauthenticated("the request token is bound to another TLS certificate")
    jti = claims["jti"]
    if not isinstance(jti, str) or not 16 <= len(jti) <= MAX_JTI_CHARS:
        raise Unauthenticated("the request token's jti must be 16 to 128 characters")
    if not remember_jti(jti, int(claims["exp"]) + LEEWAY_SECONDS):
        raise Unauthenticated("the request token was already used (replay)")
    return TokenClaims(member, audience, purpose, jti, int(claims["exp"]))


def bearer_token(authorization: list[str]) -> str:
    """The token of the one `authorization` metadata value, `Bearer <jwt>`; the scheme name is
    case-insensitive (RFC 7235 section 2.1)."""
    if len(authorization) == 1 and isinstance(authorization[0], str):
        scheme, _, token = authorization[0].strip().partition(" ")
        if scheme.lower() == BEARER and token.strip():
            return token.strip()
    raise Unauthenticated("send one request token as 'authorization: Bearer <jwt>' metadata")


def _unverified_header(token: str) -> dict:
    """The header, read only to find the key to verify with; `_decode` then parses and checks
    the whole token with PyJWT. (PyJWT's own get_unverified_header costs as much again as
    the signature check, for a parse that decode repeats.)"""
    try:
        encoded_header, _, _ = token.split(".")
        header = strict_loads(b64url_decode(encoded_header))
    except ValueError:
        raise Unauthenticated("the request token is not a JWT") from None
    if not isinstance(header, dict):
        raise Unauthenticated("the request token is not a JWT")
    return header


def _decode(token: str, public_key, *, audience: str, issuer: str, now: float) -> dict:
    try:
        claims = jwt.decode(
            token, public_key, algorithms=[ALGORITHM], audience=audience, issuer=issuer,
            leeway=LEEWAY_SECONDS,
            options={"require": REQUIRED_CLAIMS, "verify_signature": True, "verify_exp": True,
                     "verify_nbf": True, "verify_iat": True, "verify_aud": True,
                     "verify_iss": True, "strict_aud": False},
        )
        _check_times(claims, now)
        if not isinstance(claims["aud"], str):
            raise Unauthenticated("the request token's aud must be one city's member id, a "
                                  "string: one token per city")
        return claims
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("the request token has expired") from None
    except jwt.ImmatureSignatureError:
        raise Unauthenticated("the request token is not valid yet") from None
    except jwt.InvalidAudienceError:
        raise Unauthenticated("the request token is for another city") from None
    except jwt.InvalidIssuerError:
        raise Unauthenticated("the request token's issuer does not own its key") from None
    except jwt.MissingRequiredClaimError as error:
        raise Unauthenticated(f"the request token lacks the {error.claim!r} claim") from None
    except jwt.InvalidSignatureError:
        raise Unauthenticated("the request token's signature does not verify") from None
    except jwt.InvalidTokenError as error:
        raise Unauthenticated(f"the request token is invalid: {type(error).__name__}") from None


def _check_times(claims: dict, now: float) -> None:
    """PyJWT checks times against its own clock; check them against `now` as well, so a
    verifier with an injected clock applies the same rules."""
    for name in ("iat", "nbf"):
        if isinstance(claims.get(name), int | float) and claims[name] > now + LEEWAY_SECONDS:
            raise jwt.ImmatureSignatureError(name)
    if isinstance(claims.get("exp"), int | float) and claims["exp"] <= now - LEEWAY_SECONDS:
        raise jwt.ExpiredSignatureError("exp")
