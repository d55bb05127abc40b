"""Edge → origin request signing: HMAC-SHA256 over method, path, time, body hash and every
``x-eaves-*`` header (tenant, cache key, TTL), so none of them can be changed in transit.

The origin accepts only requests signed with the shared secret and dated within a skew window,
so nobody can reach the (expensive) origin around the edge.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

SIGNATURE_HEADER = "x-eaves-signature"
TIMESTAMP_HEADER = "x-eaves-timestamp"
DEFAULT_SKEW_S = 300


class SignatureError(Exception):
    """Why a request's signature was refused, in words the caller can act on."""


SIGNED_PREFIX = "x-eaves-"


def _message(method: str, path: str, timestamp: str, body: bytes, headers: Mapping[str, str]) -> bytes:
    signed = sorted((k.lower(), v) for k, v in headers.items()
                    if k.lower().startswith(SIGNED_PREFIX) and k.lower() not in (SIGNATURE_HEADER, TIMESTAMP_HEADER))
    lines = [method.upper(), path, timestamp, hashlib.sha256(body).hexdigest()]
    lines.extend(f"{k}:{v.strip()}" for k, v in signed)
    return "\n".join(lines).encode()


def sign(secret: bytes, method: str, path: str, body: bytes, now: float,
         headers: Mapping[str, str] | None = None) -> dict[str, str]:
    """The signature headers for a request that will carry ``headers`` (its x-eaves-* ones are covered)."""
    timestamp = str(int(now))
    mac = hmac.new(secret, _message(method, path, timestamp, body, headers or {}), hashlib.sha256).hexdigest()
    return {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: f"v1={mac}"}


def verify(secret: bytes, method: str, path: str, body: bytes, headers: Mapping[str, str], now: float,
           skew_s: int = DEFAULT_SKEW_S) -> None:
    timestamp = headers.get(TIMESTAMP_HEADER)
    signature = headers.get(SIGNATURE_HEADER)
    if not timestamp or not signature:
        raise SignatureError(f"request is not signed by the edge ({TIMESTAMP_HEADER} and "
                             f"{SIGNATURE_HEADER} are required)")
    try:
        sent = int(timestamp)
    except ValueError as exc:
        raise SignatureError(f"{TIMESTAMP_HEADER} must be unix seconds") from exc
    if abs(now - sent) > skew_s:
        raise SignatureError(f"signature timestamp is {int(now - sent)}s off; allowed skew is {skew_s}s "
                             "(check both clocks)")
    if not signature.startswith("v1="):
        raise SignatureError("unknown signature version (expected v1=...)")
    if not secret:
        raise SignatureError("the origin has no signing secret configured")
    expected = hmac.new(secret, _message(method, path, timestamp, body, headers), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature[3:]):
        raise SignatureError("signature does not match (wrong secret, or the request was altered)")
