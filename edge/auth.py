"""Who is calling: an API key (stored only as its SHA-256) or a JWT bearer token.

API keys are 256-bit random strings, so a plain SHA-256 is a sound one-way store (no password
stretching needed) and lets the lookup be one KV read, cached briefly in-process.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from edge.errors import BadRequest, Forbidden, Unauthorized
from edge.jwt import MAX_TOKEN_BYTES, JwtConfig, JwtError, looks_like_jwt, shown, verify_jwt
from edge.ports import Clock, KVStore
from shared.cache_keys import TENANT_RULE, InvalidTenant, InvalidUser, validate_tenant, validate_user

V = TypeVar("V")

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

    def end_user(self, requested: str, field: str = "user") -> str:
        """The end user this request is answered for, from the request's ``user`` field and the token.

        An API-key caller is a website's backend, trusted by the tenant to say who its end user is.
        A JWT caller is usually the end user's own browser: only the signed claim can name the user,
        so a ``user`` field that differs from it is refused, never believed and never silently ignored
        (believed, it would let one user read another's user-scoped answers)."""
        if self.method == "api_key":
            return requested
        if requested and requested != self.user:
            claim = "the token's end-user claim" if self.user else "a token that names no end user"
            raise BadRequest(f"'{field}' does not match {claim}; leave '{field}' out (the token says who you "
                             "are)", param=field, code="user_mismatch")
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
                 cache_size: int = 10_000, negative_cache_size: int = 1_000) -> None:
        self._kv = kv
        self._clock = clock
        self._jwt = jwt
        self._tiers = tiers
        self._cache_ttl_s = cache_ttl_s
        # Two tables, so a flood of made-up keys can only ever evict other made-up keys: digest ->
        # (expires_at, principal) for valid keys (a revoked key lives at most cache_ttl_s), and digest ->
        # expires_at for unknown ones. Both evict their oldest entry when full (insertion order).
        self._known = _Bounded[Principal](cache_size)
        self._unknown = _Bounded[bool](negative_cache_size)

    async def authenticate(self, headers: Any) -> Principal:
        token = _credentials(headers)
        if looks_like_jwt(token):
            return self._from_jwt(token)
        return await self._from_api_key(token)

    async def _from_api_key(self, token: str) -> Principal:
        digest = api_key_hash(token)
        now = self._clock.monotonic()
        known = self._known.get(digest, now)
        if known is not None:
            return known
        if not self._unknown.get(digest, now):
            principal = await self._load_key(digest)
            if principal is not None:
                cost = len(principal.tenant) + len(principal.tier) + len(principal.subject)
                self._known.put(digest, now + self._cache_ttl_s, principal, cost)
                return principal
            self._unknown.put(digest, now + self._cache_ttl_s, True)
        raise Unauthorized("the API key is not valid", code="invalid_api_key")

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
            raise Unauthorized(f"token names an unknown tier {shown(tier)}", code="invalid_token")
        subject = claims.get("sub")
        return Principal(tenant, tier, subject if isinstance(subject, str) else "", "jwt", user)


class _Bounded(Generic[V]):
    """digest -> (expires_at, value), at most ``size`` entries and ``max_bytes`` of values (as the
    caller costs them); the oldest entries go first when either bound is reached."""

    __slots__ = ("_bytes", "_items", "_max_bytes", "_size")

    def __init__(self, size: int, max_bytes: int = 8 << 20) -> None:
        self._size = max(1, size)
        self._max_bytes = max_bytes
        self._bytes = 0
        self._items: dict[str, tuple[float, V, int]] = {}

    def get(self, digest: str, now: float) -> V | None:
        found = self._items.get(digest)
        if found is None:
            return None
        if found[0] <= now:
            self._drop(digest)
            return None
        return found[1]

    def put(self, digest: str, expires: float, value: V, cost: int = 0) -> None:
        cost += len(digest) + 64  # the dict slot, the tuple and the float, roughly
        self._drop(digest)
        while self._items and (len(self._items) >= self._size or self._bytes + cost > self._max_bytes):
            self._drop(next(iter(self._items)))
        self._items[digest] = (expires, value, cost)
        self._bytes += cost

    def _drop(self, digest: str) -> None:
        found = self._items.pop(digest, None)
        if found is not None:
            self._bytes -= found[2]

    @property
    def bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)


# Credentials are at most a JWT's size; anything longer, or not printable ASCII, is refused before
# it is hashed or looked up, so junk costs no KV read and no cache entry.
MAX_CREDENTIAL_CHARS = MAX_TOKEN_BYTES


def _credentials(headers: Any) -> str:
    # Repeated headers arrive joined by ", " (the Fetch API's rule, which the emulator follows too), so
    # a comma means two credentials: refused instead of picking one.
    authorization: str | None = headers.get("authorization")
    api_key: str | None = headers.get("x-api-key")
    token: str | None = None
    if authorization:
        if "," in authorization:
            raise BadRequest("send one Authorization header; this request carries several",
                             code="conflicting_credentials")
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("the Authorization header must be 'Bearer <API key or JWT>'",
                               code="invalid_authorization_header")
        token = token.strip()
    if api_key:
        key = str(api_key).strip()
        if "," in key or (token is not None and key != token):
            raise BadRequest("send one credential: this request carries both an Authorization header and an "
                             "X-API-Key header (or several of one) with different values",
                             code="conflicting_credentials")
        token = key
    if token is None:
        raise Unauthorized("no credentials: send 'Authorization: Bearer <API key or JWT>'",
                           code="missing_credentials")
    if len(token) > MAX_CREDENTIAL_CHARS or not (token.isascii() and token.isprintable()) or " " in token:
        raise Unauthorized("the credential is malformed: an API key or JWT is printable ASCII without spaces",
                           code="malformed_credentials")
    return token
