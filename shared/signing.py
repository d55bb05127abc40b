"""Edge → origin request signing: HMAC-SHA256 over method, path, time, body hash and every
``x-eaves-*`` header (tenant, cache key, TTL, a fresh nonce), so none of them can be changed in transit.

The origin accepts only requests signed with the shared secret and dated within a skew window,
so nobody can reach the (expensive) origin around the edge; and, by remembering each nonce until its
window has passed (``origin.replay``), each signed request only once. Every ``sign`` call draws a new
nonce, so an edge that sends the same work twice (a refresh, a retry) signs it twice.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Mapping

SIGNATURE_HEADER = "x-eaves-signature"
TIMESTAMP_HEADER = "x-eaves-timestamp"
NONCE_HEADER = "x-eaves-nonce"
DEFAULT_SKEW_S = 300
MAX_HEADER_VALUE_CHARS = 4096
_NONCE = re.compile(r"[0-9a-f]{32}")
# What an HTTP/1.1 client can send as it is and the origin reads back unchanged: visible ASCII with
# inner spaces, nothing at either end (RFC 9110 §5.5 strips that; the signature would then not match).
_HEADER_VALUE = re.compile(r"(?:[!-~](?:[ -~]*[!-~])?)?")


class SignatureError(Exception):
    """Why a request's signature was refused, in words the caller can act on."""


class SigningError(ValueError):
    """The request cannot be signed as it stands (a header value no HTTP client can send unchanged)."""


SIGNED_PREFIX = "x-eaves-"


def _message(method: str, path: str, timestamp: str, body: bytes, headers: Mapping[str, str]) -> bytes:
    signed = sorted((k.lower(), v) for k, v in headers.items()
                    if k.lower().startswith(SIGNED_PREFIX) and k.lower() not in (SIGNATURE_HEADER, TIMESTAMP_HEADER))
    lines = [method.upper(), path, timestamp, hashlib.sha256(body).hexdigest()]
    lines.extend(f"{k}:{v.strip()}" for k, v in signed)
    return "\n".join(lines).encode()


def sign(secret: bytes, method: str, path: str, body: bytes, now: float,
         headers: Mapping[str, str] | None = None) -> dict[str, str]:
    """The signature headers for a request that will carry ``headers`` (its x-eaves-* ones are covered),
    with a fresh nonce. Raises ``SigningError`` for a header value that cannot travel unchanged."""
    for name, value in (headers or {}).items():
        if len(value) > MAX_HEADER_VALUE_CHARS or not _HEADER_VALUE.fullmatch(value):
            shown = repr(value) if len(value) <= 40 else repr(value[:37]) + "..."
            raise SigningError(f"header {name} cannot carry {shown}: header values are visible ASCII without "
                               f"spaces at either end, at most {MAX_HEADER_VALUE_CHARS} characters")
    timestamp = str(int(now))
    signed = {**(headers or {}), NONCE_HEADER: os.urandom(16).hex()}
    mac = hmac.new(secret, _message(method, path, timestamp, body, signed), hashlib.sha256).hexdigest()
    return {TIMESTAMP_HEADER: timestamp, NONCE_HEADER: signed[NONCE_HEADER], SIGNATURE_HEADER: f"v1={mac}"}


def check_headers(headers: Mapping[str, str], now: float, skew_s: int = DEFAULT_SKEW_S) -> tuple[int, str]:
    """What can be checked before the body is read: the signature headers are there, well formed and
    dated within the window. Returns (sent at, nonce)."""
    timestamp = headers.get(TIMESTAMP_HEADER)
    signature = headers.get(SIGNATURE_HEADER)
    nonce = headers.get(NONCE_HEADER)
    if not timestamp or not signature or not nonce:
        raise SignatureError(f"request is not signed by the edge ({TIMESTAMP_HEADER}, {NONCE_HEADER} and "
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
    if not _NONCE.fullmatch(nonce):
        raise SignatureError(f"{NONCE_HEADER} must be 32 lower-case hex digits")
    return sent, nonce


def verify(secret: bytes, method: str, path: str, body: bytes, headers: Mapping[str, str], now: float,
           skew_s: int = DEFAULT_SKEW_S) -> tuple[int, str]:
    """Check the whole signature; returns (sent at, nonce) for the replay check."""
    sent, nonce = check_headers(headers, now, skew_s)
    if not secret:
        raise SignatureError("the origin has no signing secret configured")
    timestamp = headers[TIMESTAMP_HEADER]
    expected = hmac.new(secret, _message(method, path, timestamp, body, headers), hashlib.sha256).hexdigest()
    # Bytes, not str: compare_digest refuses non-ASCII str, and a forged header may hold anything.
    if not hmac.compare_digest(expected.encode(), headers[SIGNATURE_HEADER][3:].encode("utf-8", "surrogatepass")):
        raise SignatureError("signature does not match (wrong secret, or the request was altered)")
    return sent, nonce
