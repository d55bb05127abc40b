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

from edge.errors import BadRequest, Forbidden, Unauthorized
from edge.jwt import JwtConfig, JwtError, looks_like_jwt, verify_jwt
from edge.ports import Clock, KVStore
from shared.cache_keys import TENANT_RULE, InvalidTenant, InvalidUser, validate_tenant, validate_user

KEY_PREFIX = "key/"
API_KEY_PREFIX = "eav_"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the tenant (validated: it becomes a KV key segment), and for a JWT caller the end
    user the token names (``user_claim``, ``sub`` by default; "" when the token names none)."""

    tenant: str
    tier: str
    subject: str
    method: Literal["api_key", "jwt"]
    user: str = ""

    def __post_init__(self) -> None:
        validate_tenant(self.tenant)  # defence in depth: each creator below refuses with its own message

    def end_user(self, requested: str) -> str:
        """The end user this request is answered for, from the request's ``user`` field and the token.

        An API-key caller is a website's backend, trusted by the tenant to say who its end user is.
        A JWT caller is usually the end user's own browser: only the signed claim can name the user,
        so a ``user`` field that differs from it is refused, never believed and never silently ignored
        (believed, it would let one user read another's user-scoped answers)."""
        if self.method == "api_key":
            return requested
        if requested and requested != self.user:
            claim = "the token's end-user claim" if self.user else "a token that names no end user"
            raise BadRequest(f"'user' does not match {claim}; leave 'user' out (the token says who you are)",
                             param="user", code="user_mismatch")
        return self.user


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
            tenant, tier, name = str(record["tenant"]), str(record["tier"]), str(record.get("name", ""))
        except (ValueError, KeyError, TypeError):
            return None  # a damaged record is an unknown key, never a crash
        try:
            validate_tenant(tenant)
        except InvalidTenant as exc:
            # A key stored before tenant ids were checked: refused, so it can never build a KV key.
            raise Forbidden(f"this API key's {exc}; create a new key for a valid tenant id "
                            "(eaves keys create --tenant ...)", code="invalid_tenant") from exc
        return Principal(tenant, tier, name, "api_key")

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
        try:
            validate_tenant(tenant)
        except InvalidTenant as exc:
            raise Unauthorized(f"token claim '{self._jwt.tenant_claim}' is not a valid tenant id: use "
                               f"{TENANT_RULE}", code="invalid_token") from exc
        user = claims.get(self._jwt.user_claim, "")
        try:
            user = validate_user(user) if user != "" else ""
        except InvalidUser as exc:
            raise Unauthorized(f"token claim '{self._jwt.user_claim}' (the end user) is not valid: {exc}",
                               code="invalid_token") from exc
        tier = claims.get(self._jwt.tier_claim, self._jwt.default_tier)
        if not isinstance(tier, str) or (self._tiers and tier not in self._tiers):
            raise Unauthorized(f"token names an unknown tier {tier!r}", code="invalid_token")
        subject = claims.get("sub")
        return Principal(tenant, tier, subject if isinstance(subject, str) else "", "jwt", user)


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
