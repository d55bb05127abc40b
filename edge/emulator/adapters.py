"""CPython adapters for the edge's ports: LMDB KV, LMDB rate-limit counters, httpx origin client."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx

from edge import errors
from edge.ports import KVEntry, KVKey, KVListPage, OriginRequest, OriginResponse, RateDecision
from edge.ratelimit import WindowState, sliding_window
from shared.kv_lmdb import LmdbKV, open_env


class AsyncLmdbKV:
    """The KVStore port over LMDB."""

    def __init__(self, store: LmdbKV) -> None:
        self.store = store

    async def get(self, key: str) -> KVEntry | None:
        found = self.store.get(key)
        return None if found is None else KVEntry(found[0], found[1])

    async def put(self, key: str, value: bytes, *, expiration_ttl: int | None = None,
                  metadata: dict[str, Any] | None = None) -> None:
        self.store.put(key, value, expiration_ttl=expiration_ttl, metadata=metadata)

    async def delete(self, key: str) -> None:
        self.store.delete(key)

    async def list(self, *, prefix: str = "", limit: int = 1000, cursor: str | None = None) -> KVListPage:
        items, next_cursor = self.store.list(prefix=prefix, limit=limit, cursor=cursor)
        keys = [KVKey(name, int(exp) if exp else None, meta) for name, exp, meta in items]
        return KVListPage(keys, next_cursor is None, next_cursor)


class LmdbRateLimiter:
    """Sliding-window counters shared by every emulator worker process: read, decide and write in
    one LMDB write transaction, which LMDB serialises across processes."""

    def __init__(self, path: Any, clock: Any = time.time) -> None:
        self._env = open_env(path, map_size=64 << 20, durable=False)
        self._db = self._env.open_db(b"ratelimit")
        self._clock = clock

    async def acquire(self, key: str, limit: int, window_s: int) -> RateDecision:
        raw_key = f"{key}/{limit}/{window_s}".encode()
        with self._env.begin(db=self._db, write=True) as txn:
            state, decision = sliding_window(WindowState.unpack(txn.get(raw_key)), self._clock(), limit, window_s)
            txn.put(raw_key, state.pack())
        return decision


class HttpxOriginClient:
    """The OriginClient port over one pooled httpx.AsyncClient."""

    def __init__(self, base_url: str, *, max_connections: int = 200) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            timeout=httpx.Timeout(30.0),
        )

    async def send(self, request: OriginRequest) -> OriginResponse:
        timeout = httpx.Timeout(request.timeout_s, connect=min(5.0, request.timeout_s))
        try:
            if not request.stream:
                response = await self._client.request(request.method, request.path, content=request.body,
                                                      headers=request.headers, timeout=timeout)
                return OriginResponse(response.status_code, response.headers, response.content)
            upstream = await self._client.send(
                self._client.build_request(request.method, request.path, content=request.body,
                                           headers=request.headers, timeout=timeout), stream=True)
        except httpx.TimeoutException as exc:
            raise errors.UpstreamTimeout(f"the origin did not answer within {request.timeout_s:g}s",
                                         code="origin_timeout") from exc
        except httpx.HTTPError as exc:
            raise errors.UpstreamError(f"the origin could not be reached ({type(exc).__name__})",
                                       code="origin_unreachable") from exc
        return OriginResponse(upstream.status_code, upstream.headers, _relay(upstream))

    async def aclose(self) -> None:
        await self._client.aclose()


async def _relay(upstream: httpx.Response) -> AsyncIterator[bytes]:
    try:
        async for chunk in upstream.aiter_raw():
            yield chunk
    except httpx.HTTPError as exc:
        raise errors.UpstreamError("the origin's stream broke", code="origin_stream_broken") from exc
    finally:
        await upstream.aclose()
