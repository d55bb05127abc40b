"""The edge's ports: the only ways the core reaches the world.

Each is a small Protocol with one implementation per runtime:
``edge.memory`` (tests and fakes), ``edge.emulator`` (CPython: LMDB, httpx) and
``edge.workers`` (Pyodide: Workers KV, JS fetch, the rate-limiting binding).
All I/O methods are coroutines because the Workers runtime's are promises.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from shared.kv import KVEntry, KVKey, KVListPage, KVStore

__all__ = ["Background", "Clock", "KVEntry", "KVKey", "KVListPage", "KVStore", "OriginClient", "OriginRequest",
           "OriginResponse", "RateDecision", "RateLimiter"]

# ---------------------------------------------------------------- origin


@dataclass(slots=True)
class OriginRequest:
    path: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    method: str = "POST"
    timeout_s: float = 30.0
    stream: bool = False


@dataclass(slots=True)
class OriginResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes | AsyncIterator[bytes]


class OriginClient(Protocol):
    async def send(self, request: OriginRequest) -> OriginResponse:
        """Send ``request``; raise ``edge.errors.UpstreamError``/``UpstreamTimeout`` on failure."""


# ---------------------------------------------------------------- rate limiting


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_s: float  # seconds until the budget is back to ``limit`` (or one slot frees)


class RateLimiter(Protocol):
    async def acquire(self, key: str, limit: int, window_s: int) -> RateDecision:
        """Count one request against ``key`` if the budget allows it, atomically across processes."""


# ---------------------------------------------------------------- time and background work


class Clock(Protocol):
    def now(self) -> float:
        """Wall-clock seconds since the epoch (expiry, JWT, signatures)."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin (durations, Server-Timing)."""


class Background(Protocol):
    def defer(self, work: Awaitable[Any]) -> None:
        """Run ``work`` after the response is sent (Workers' ``ctx.waitUntil``)."""
