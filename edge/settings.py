"""Edge settings from one flat mapping: environment variables locally, ``env`` vars and secrets on Workers.

Every value may arrive as a string (that is all env vars and wrangler vars can be), so each is
parsed here once, with an error that names the variable.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edge.jwt import JwtConfig, JwtKey


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True, slots=True)
class Tier:
    limit: int  # requests per window
    window_s: int


DEFAULT_TIERS: Mapping[str, Tier] = {
    "free": Tier(60, 60),
    "pro": Tier(600, 60),
    "enterprise": Tier(6000, 60),
}


@dataclass(frozen=True, slots=True)
class EdgeSettings:
    origin_url: str = "http://127.0.0.1:8788"
    origin_secret: bytes = b""
    origin_timeout_s: float = 30.0
    default_model: str = "eaves-default"
    max_body_bytes: int = 256 * 1024
    max_prompt_chars: int = 16_000
    tiers: Mapping[str, Tier] = field(default_factory=lambda: dict(DEFAULT_TIERS))
    jwt: JwtConfig | None = None
    prompt_version: str = "1"  # bump when the origin's prompt template changes: old answers become misses
    key_cache_ttl_s: float = 30.0
    stale_if_error_s: int = 86_400  # default for routes that do not set their own
    breaker_failures: int = 5  # consecutive origin failures that open the circuit
    breaker_cooldown_s: float = 10.0  # how long it stays open before one probe
    error_retry_after_s: int = 5  # Retry-After on a failed request when the breaker is closed
    heartbeat_s: float = 2.0  # SSE comment after this long without a chunk from the origin

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], prefix: str = "EAVES_") -> EdgeSettings:
        def get(name: str) -> Any:
            return values.get(prefix + name)

        kwargs: dict[str, Any] = {}
        if (url := get("ORIGIN_URL")) is not None:
            if not str(url).startswith(("http://", "https://")):
                raise SettingsError(f"{prefix}ORIGIN_URL must be an http(s) URL, not {url!r}")
            kwargs["origin_url"] = str(url).rstrip("/")
        if (secret := get("ORIGIN_SECRET")) is not None:
            kwargs["origin_secret"] = str(secret).encode()
        for name, attr, kind in (("ORIGIN_TIMEOUT_S", "origin_timeout_s", float),
                                 ("MAX_BODY_BYTES", "max_body_bytes", int),
                                 ("MAX_PROMPT_CHARS", "max_prompt_chars", int),
                                 ("KEY_CACHE_TTL_S", "key_cache_ttl_s", float),
                                 ("STALE_IF_ERROR_S", "stale_if_error_s", int),
                                 ("BREAKER_FAILURES", "breaker_failures", int),
                                 ("BREAKER_COOLDOWN_S", "breaker_cooldown_s", float),
                                 ("ERROR_RETRY_AFTER_S", "error_retry_after_s", int),
                                 ("HEARTBEAT_S", "heartbeat_s", float)):
            if (raw := get(name)) is not None:
                kwargs[attr] = _number(prefix + name, raw, kind)
        for name, attr in (("DEFAULT_MODEL", "default_model"), ("PROMPT_VERSION", "prompt_version")):
            if (raw := get(name)) is not None:
                kwargs[attr] = str(raw)
        if (raw := get("TIERS")) is not None:
            kwargs["tiers"] = _tiers(prefix + "TIERS", raw)
        if (raw := get("JWT")) is not None and raw != "":
            kwargs["jwt"] = _jwt(prefix + "JWT", raw)
        return cls(**kwargs)


def _number(name: str, raw: Any, kind: type[int] | type[float]) -> Any:
    try:
        value = kind(raw)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"{name} must be a number, not {raw!r}") from exc
    if value <= 0:
        raise SettingsError(f"{name} must be positive")
    return value


def _json(name: str, raw: Any) -> Any:
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise SettingsError(f"{name} is not valid JSON: {exc}") from exc
    return raw


def _tiers(name: str, raw: Any) -> dict[str, Tier]:
    data = _json(name, raw)
    if not isinstance(data, dict) or not data:
        raise SettingsError(f'{name} must be an object like {{"free": {{"limit": 60, "window_s": 60}}}}')
    tiers = {}
    for tier, spec in data.items():
        if not isinstance(spec, dict):
            raise SettingsError(f"{name}.{tier} must be an object with 'limit' and 'window_s'")
        limit = _number(f"{name}.{tier}.limit", spec.get("limit"), int)
        window = _number(f"{name}.{tier}.window_s", spec.get("window_s", 60), int)
        tiers[str(tier)] = Tier(limit, window)
    return tiers


def _jwt(name: str, raw: Any) -> JwtConfig:
    data = _json(name, raw)
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list) or not data["keys"]:
        raise SettingsError(f"{name} must be an object with a non-empty 'keys' list")
    try:
        keys = [JwtKey.from_config(item) for item in data["keys"]]
    except (ValueError, TypeError) as exc:
        raise SettingsError(f"{name}: {exc}") from exc
    return JwtConfig(
        keys=keys,
        issuer=data.get("issuer"),
        audience=data.get("audience"),
        leeway_s=int(data.get("leeway_s", 30)),
        tenant_claim=str(data.get("tenant_claim", "tenant")),
        tier_claim=str(data.get("tier_claim", "tier")),
        user_claim=str(data.get("user_claim", "sub")),
        default_tier=str(data.get("default_tier", "free")),
    )
