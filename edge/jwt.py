"""JWT bearer tokens (RFC 7519) signed HS256 or RS256, verified with the algorithm pinned per key.

The token's ``alg`` header only selects among keys configured for that algorithm; it can never
change how a key is used, so ``alg: none`` and HS256-signed-with-the-RSA-public-key both fail.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from edge.rsa import RsaPublicKey, load_rsa_public_key
from shared.wire import WireError, loads_json

Algorithm = Literal["HS256", "RS256"]
MAX_TOKEN_BYTES = 8192


class JwtError(Exception):
    """Why a token was refused, in words fit for a 401 body."""


@dataclass(frozen=True, slots=True)
class JwtKey:
    alg: Algorithm
    kid: str | None = None
    secret: bytes | None = None  # HS256
    public_key: RsaPublicKey | None = None  # RS256

    @classmethod
    def from_config(cls, item: dict[str, Any]) -> JwtKey:
        alg = item.get("alg")
        kid = item.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise ValueError("JWT key 'kid' must be a string")
        if alg == "HS256":
            secret = item.get("secret")
            if not isinstance(secret, str) or len(secret.encode()) < 32:
                raise ValueError("HS256 key needs a 'secret' of at least 32 bytes (RFC 7518 §3.2)")
            return cls("HS256", kid, secret=secret.encode())
        if alg == "RS256":
            source = item.get("jwk") or item.get("pem")
            if source is None:
                raise ValueError("RS256 key needs a 'jwk' object or a 'pem' public key")
            return cls("RS256", kid, public_key=load_rsa_public_key(source))
        raise ValueError(f"JWT key 'alg' must be HS256 or RS256, not {alg!r}")

    def verify(self, signing_input: bytes, signature: bytes) -> bool:
        if self.alg == "HS256" and self.secret is not None:
            expected = hmac.new(self.secret, signing_input, hashlib.sha256).digest()
            return hmac.compare_digest(expected, signature)
        if self.alg == "RS256" and self.public_key is not None:
            return self.public_key.verify_sha256(signing_input, signature)
        return False


@dataclass(frozen=True, slots=True)
class JwtConfig:
    keys: Sequence[JwtKey]
    issuer: str | None = None
    audience: str | None = None
    leeway_s: int = 30
    tenant_claim: str = "tenant"
    tier_claim: str = "tier"
    user_claim: str = "sub"  # names the end user (cache scope "user", x-eaves-user to the origin)
    default_tier: str = "free"
    required_claims: tuple[str, ...] = field(default=("exp",))


_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def segment_decode(segment: str) -> bytes:
    """One JWS segment: base64url without padding (RFC 7515 §2), in its one canonical spelling.

    Python's decoder also takes ``=`` padding, the standard alphabet's ``+``/``/`` and non-zero
    trailing bits, so one signature would have many spellings; only the canonical one is accepted.
    """
    if not _B64URL.fullmatch(segment) or len(segment) % 4 == 1:
        raise ValueError("not unpadded base64url")
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not unpadded base64url") from exc
    if segment_encode(raw) != segment:
        raise ValueError("not canonical base64url (non-zero trailing bits)")
    return raw


def segment_encode(raw: bytes) -> str:
    """``raw`` as a JWS segment, in the one spelling ``segment_decode`` accepts."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def sign_hs256(claims: dict[str, Any], secret: str, header: dict[str, Any] | None = None) -> str:
    """An HS256 token for ``claims``, as a site's backend signs one with the tenant's shared secret.

    The edge only verifies; this is for the load test, the tests and local development. ``header``
    replaces the default ``{"alg": "HS256", "typ": "JWT"}`` (tests send odd ones); the signature is
    HMAC-SHA256 whatever it says."""
    head = segment_encode(json.dumps(header or {"alg": "HS256", "typ": "JWT"}).encode())
    body = segment_encode(json.dumps(claims).encode())
    signature = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{segment_encode(signature)}"


def shown(value: Any) -> str:
    """A header field quoted in an error message: bounded, whatever the token carried."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("eyJ")


def verify_jwt(token: str, config: JwtConfig, now: float) -> dict[str, Any]:
    if len(token) > MAX_TOKEN_BYTES:
        raise JwtError("token is too long")
    try:
        header_b64, payload_b64, signature_b64 = token.split(".")
        header = loads_json(segment_decode(header_b64))
        signature = segment_decode(signature_b64)
    except WireError as exc:
        raise JwtError(f"token header is not valid JSON: {exc}") from exc
    except ValueError as exc:
        raise JwtError("token is not a well-formed JWT: each segment must be unpadded base64url "
                       "(RFC 7515)") from exc
    if not isinstance(header, dict):
        raise JwtError("token header is not a JSON object")
    alg = header.get("alg")
    if alg not in ("HS256", "RS256"):
        raise JwtError(f"token algorithm {shown(alg)} is not accepted (HS256 or RS256 only)")
    if "crit" in header:
        raise JwtError("token has critical header extensions this edge does not understand")
    kid = header.get("kid")
    candidates = [k for k in config.keys if k.alg == alg and (kid is None or k.kid is None or k.kid == kid)]
    if not candidates:
        raise JwtError(f"no {alg} key configured" + (f" with kid {shown(kid)}" if kid else ""))
    signing_input = f"{header_b64}.{payload_b64}".encode()
    if not any(key.verify(signing_input, signature) for key in candidates):
        raise JwtError("token signature is invalid")

    try:
        claims = loads_json(segment_decode(payload_b64))
    except ValueError as exc:  # WireError is one
        raise JwtError("token payload is not valid JSON in unpadded base64url") from exc
    if not isinstance(claims, dict):
        raise JwtError("token payload is not a JSON object")
    _check_claims(claims, config, now)
    return claims


def _check_claims(claims: dict[str, Any], config: JwtConfig, now: float) -> None:
    for name in config.required_claims:
        if name not in claims:
            raise JwtError(f"token has no '{name}' claim")
    for name in ("exp", "nbf", "iat"):
        if name in claims and (isinstance(claims[name], bool) or not isinstance(claims[name], int | float)):
            raise JwtError(f"token claim '{name}' must be a number")
    if "exp" in claims and now > claims["exp"] + config.leeway_s:
        raise JwtError("token has expired")
    if "nbf" in claims and now + config.leeway_s < claims["nbf"]:
        raise JwtError("token is not valid yet (nbf)")
    if config.issuer is not None and claims.get("iss") != config.issuer:
        raise JwtError("token issuer (iss) is not accepted")
    if config.audience is not None:
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if config.audience not in audiences:
            raise JwtError("token audience (aud) does not include this edge")
