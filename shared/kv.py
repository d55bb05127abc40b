"""Workers KV's rules, enforced locally so development fails where production would.

Limits from Cloudflare's Workers KV documentation: key ≤ 512 bytes, value ≤ 25 MiB,
metadata ≤ 1024 bytes of serialized JSON, expirationTtl ≥ 60 seconds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

MAX_KEY_BYTES = 512
MAX_VALUE_BYTES = 25 * 1024 * 1024
MAX_METADATA_BYTES = 1024
MIN_EXPIRATION_TTL = 60
MAX_LIST_LIMIT = 1000


class KVError(Exception):
    """A KV operation failed."""


class KVLimitError(KVError, ValueError):
    """The operation breaks a Workers KV limit; production would refuse it too."""


class KVStorageFull(KVError):
    """The local store has no room left (LMDB map full); nothing was written."""


def check_key(key: str) -> bytes:
    if not isinstance(key, str):
        raise KVLimitError(f"KV key must be a string, not {type(key).__name__}")
    raw = key.encode()
    if not raw:
        raise KVLimitError("KV key must not be empty")
    if key in (".", ".."):
        raise KVLimitError(f"KV key {key!r} is not allowed")
    if len(raw) > MAX_KEY_BYTES:
        raise KVLimitError(f"KV key is {len(raw)} bytes; Workers KV allows at most {MAX_KEY_BYTES}")
    return raw


def check_value(value: bytes) -> None:
    if len(value) > MAX_VALUE_BYTES:
        raise KVLimitError(f"KV value is {len(value)} bytes; Workers KV allows at most {MAX_VALUE_BYTES}")


def check_metadata(metadata: dict[str, Any] | None) -> bytes:
    if metadata is None:
        return b""
    try:
        raw = json.dumps(metadata, separators=(",", ":")).encode()
    except (TypeError, ValueError) as exc:
        raise KVLimitError(f"KV metadata must be JSON-serialisable: {exc}") from exc
    if len(raw) > MAX_METADATA_BYTES:
        raise KVLimitError(f"KV metadata is {len(raw)} bytes serialized; Workers KV allows at most "
                           f"{MAX_METADATA_BYTES}")
    return raw


def check_ttl(expiration_ttl: int | None) -> None:
    if expiration_ttl is None:
        return
    if isinstance(expiration_ttl, bool) or not isinstance(expiration_ttl, int):
        raise KVLimitError("expirationTtl must be a whole number of seconds")
    if expiration_ttl < MIN_EXPIRATION_TTL:
        raise KVLimitError(f"expirationTtl is {expiration_ttl}s; Workers KV requires at least "
                           f"{MIN_EXPIRATION_TTL}s")


def check_list_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise KVLimitError(f"list limit must be between 1 and {MAX_LIST_LIMIT}, not {limit}")


# ---------------------------------------------------------------- the port (shaped like Workers KV)


@dataclass(frozen=True, slots=True)
class KVEntry:
    value: bytes
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class KVKey:
    name: str
    expiration: int | None = None  # unix seconds, as Workers KV reports it
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class KVListPage:
    keys: list[KVKey]
    list_complete: bool
    cursor: str | None = None


class KVStore(Protocol):
    async def get(self, key: str) -> KVEntry | None:
        """The value and metadata under ``key``, or None when absent or expired."""

    async def put(self, key: str, value: bytes, *, expiration_ttl: int | None = None,
                  metadata: dict[str, Any] | None = None) -> None:
        """Store ``value``; raises ``KVLimitError`` where Workers KV would refuse it."""

    async def delete(self, key: str) -> None: ...

    async def list(self, *, prefix: str = "", limit: int = 1000, cursor: str | None = None) -> KVListPage: ...
