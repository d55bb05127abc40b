"""Who is calling: an API key (stored only as its SHA-256) or a JWT bearer token.

API keys are 256-bit random strings, so a plain SHA-256 is a sound one-way store (no password
stretching needed) and lets the lookup be one KV read, cached briefly in-process.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any, Literal

from edge.errors import Unauthorized
from edge.jwt import JwtConfig, JwtError, looks_like_jwt, verify_jwt
from edge.ports import Clock, KVStore

KEY_PREFIX = "key/"
API_KEY_PREFIX = "eav_"


@dataclass(frozen=True, slots=True)
class Principal:
    tenant: str
    tier: str
    subject: str
    method: Literal["api_key", "jwt"]


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def api_key_hash(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def api_key_record(tenant: str, tier: str, name: str, created: float) -> bytes:
    return json.dumps({"tenant": tenant, "tier": tier, "name": name, "created": int(created)}).encode()


class Authenticator:
    def __init__(self, kv: KVStore, clock: Clock, jwt: JwtConfig | None = None,
                 tiers: frozenset[str] = frozenset(), cache_ttl_s: float = 30.0,
                 cache_size: int = 10_000) -> None:
        self._kv = kv
        self._clock = clock
        self._jwt = jwt
        self._tiers = tiers
        self._cache_ttl_s = cache_ttl_s
        self._cache_size = cache_size
        # hash -> (expires_at, principal or None for "unknown key"); a revoked key lives at most cache_ttl_s.
        self._cache: dict[str, tuple[float, Principal | None]] = {}

    async def authenticate(self, headers: Any) -> Principal:
        token = _credentials(headers)
        if looks_like_jwt(token):
            return self._from_jwt(token)
        return await self._from_api_key(token)

    async def _from_api_key(self, token: str) -> Principal:
        digest = api_key_hash(token)
        now = self._clock.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            principal = cached[1]
        else:
            principal = await self._load_key(digest)
            if len(self._cache) >= self._cache_size:
                self._cache.clear()  # crude but bounded; keys re-load in one KV read each
            self._cache[digest] = (now + self._cache_ttl_s, principal)
        if principal is None:
            raise Unauthorized("the API key is not valid", code="invalid_api_key")
        return principal

    async def _load_key(self, digest: str) -> Principal | None:
        entry = await self._kv.get(KEY_PREFIX + digest)
        if entry is None:
            return None
        try:
            record = json.loads(entry.value)
            return Principal(str(record["tenant"]), str(record["tier"]), str(record.get("name", "")),
                             "api_key")
        except (ValueError, KeyError, TypeError):
            return None  # a damaged record is an unknown key, never a crash

    def _from_jwt(self, token: str) -> Principal:
        if self._jwt is None:
            raise Unauthorized("JWT bearer tokens are not enabled on this edge", code="jwt_disabled")
        try:
            claims = verify_jwt(token, self._jwt, self._clock.now())
        except JwtError as exc:
            raise Unauthorized(str(exc), code="invalid_token") from exc
        tenant = claims.get(self._jwt.tenant_claim)
        if not isinstance(tenant, str) or not tenant:
            raise Unauthorized(f"token has no '{self._jwt.tenant_claim}' claim naming the tenant",
                               code="invalid_token")
        tier = claims.get(self._jwt.tier_claim, self._jwt.default_tier)
        if not isinstance(tier, str) or (self._tiers and tier not in self._tiers):
            raise Unauthorized(f"token names an unknown tier {tier!r}", code="invalid_token")
        subject = claims.get("sub")
        return Principal(tenant, tier, subject if isinstance(subject, str) else "", "jwt")


def _credentials(headers: Any) -> str:
    authorization: str | None = headers.get("authorization")
    if authorization:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("the Authorization header must be 'Bearer <API key or JWT>'",
                               code="invalid_authorization_header")
        return token.strip()
    api_key = headers.get("x-api-key")
    if api_key:
        return str(api_key).strip()
    raise Unauthorized("no credentials: send 'Authorization: Bearer <API key or JWT>'", code="missing_credentials")
