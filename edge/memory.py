"""The in-memory runtime: real, maintained implementations of every port.

Tests, the load generator's fakes and quick experiments all use these; each enforces the same
rules as its production counterpart (Workers KV's limits, atomic rate-limit updates).
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Awaitable, Callable
from typing import Any

from edge.ports import KVEntry, KVKey, KVListPage, OriginRequest, OriginResponse, RateDecision
from edge.ratelimit import WindowState, sliding_window
from shared import kv as kv_rules


class SystemClock:
    # The builtins themselves, not methods that call them: a hit reads the clock ~8 times, and a Python
    # frame around each costs more than the read.
    now = staticmethod(time.time)
    monotonic = staticmethod(time.perf_counter)


class ManualClock:
    """A clock that moves only when told to: deterministic expiry, JWT and rate-limit tests."""

    def __init__(self, start: float = 1_750_000_000.0) -> None:
        self._now = start
        self._mono = 0.0

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._now += seconds
        self._mono += seconds


class MemoryKV:
    """Workers KV semantics in a dict: limits enforced, expiry honoured, sorted prefix listing."""

    def __init__(self, clock: Any = None) -> None:
        self._clock = clock or SystemClock()
        self._data: dict[str, tuple[bytes, dict[str, Any] | None, float | None]] = {}
        self.writes = 0

    async def get(self, key: str) -> KVEntry | None:
        kv_rules.check_key(key)
        item = self._data.get(key)
        if item is None:
            return None
        value, metadata, expires = item
        if expires is not None and expires <= self._clock.now():
            del self._data[key]
            return None
        return KVEntry(value, metadata)

    async def put(self, key: str, value: bytes, *, expiration_ttl: int | None = None,
                  metadata: dict[str, Any] | None = None) -> None:
        kv_rules.check_key(key)
        kv_rules.check_value(value)
        kv_rules.check_metadata(metadata)
        kv_rules.check_ttl(expiration_ttl)
        expires = self._clock.now() + expiration_ttl if expiration_ttl is not None else None
        self._data[key] = (bytes(value), metadata, expires)
        self.writes += 1

    async def delete(self, key: str) -> None:
        kv_rules.check_key(key)
        self._data.pop(key, None)

    async def list(self, *, prefix: str = "", limit: int = 1000, cursor: str | None = None) -> KVListPage:
        kv_rules.check_list_limit(limit)
        now = self._clock.now()
        names = sorted(k for k, (_, _, exp) in self._data.items()
                       if k.startswith(prefix) and (exp is None or exp > now))
        start = bisect.bisect_right(names, cursor) if cursor else 0
        page = names[start:start + limit]
        keys = []
        for name in page:
            _, metadata, expires = self._data[name]
            keys.append(KVKey(name, int(expires) if expires is not None else None, metadata))
        complete = start + limit >= len(names)
        return KVListPage(keys, complete, None if complete else page[-1])


class MemoryRateLimiter:
    """Sliding-window counters in a dict. Atomic because the event loop runs one update at a time."""

    def __init__(self, clock: Any = None) -> None:
        self._clock = clock or SystemClock()
        self._state: dict[str, WindowState] = {}

    async def acquire(self, key: str, limit: int, window_s: int) -> RateDecision:
        state, decision = sliding_window(self._state.get(key), self._clock.now(), limit, window_s)
        self._state[key] = state
        return decision


class TaskBackground:
    """Background work as asyncio tasks, referenced until done (the loop keeps only weak references)."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def defer(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


OriginHandler = Callable[[OriginRequest], Awaitable[OriginResponse]]


class CallbackOrigin:
    """An origin answered by a function, like httpx's MockTransport; records what it was sent."""

    def __init__(self, handler: OriginHandler) -> None:
        self._handler = handler
        self.requests: list[OriginRequest] = []

    async def send(self, request: OriginRequest) -> OriginResponse:
        self.requests.append(request)
        return await self._handler(request)
