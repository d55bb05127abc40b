"""CPython adapters for the edge's ports: LMDB rate-limit counters and the httpx origin client
(the LMDB KV adapter lives in shared.kv_lmdb: the origin writes through it too)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx

from edge import errors
from edge.emulator.counters import claim, counter_key
from edge.ports import OriginRequest, OriginResponse, RateDecision
from edge.ratelimit import WindowState, sliding_window
from shared.kv_lmdb import AsyncLmdbKV, open_env

__all__ = ["AsyncLmdbKV", "HttpxOriginClient", "LmdbRateLimiter"]


class LmdbRateLimiter:
    """Sliding-window counters shared by every emulator worker process: read, decide and write in
    one LMDB write transaction, which LMDB serialises across processes. (One process alone keeps them in
    memory instead: ``edge.emulator.counters``; the two never count in one directory at once.)"""

    def __init__(self, path: Any, clock: Any = time.time) -> None:
        self._lock_fd = claim(path, exclusive=False)
        self._env = open_env(path, map_size=64 << 20, durable=False, writemap=True)  # on every request
        self._db = self._env.open_db(b"ratelimit")
        self._clock = clock

    async def acquire(self, key: str, limit: int, window_s: int) -> RateDecision:
        # The core names one counter per tenant and scope (edge.ratelimit.rate_limit_key); budgets of
        # different tiers share it. Longer names than LMDB takes are hashed, never an error.
        raw_key = counter_key(key)
        with self._env.begin(db=self._db, write=True) as txn:
            state, decision = sliding_window(WindowState.unpack(txn.get(raw_key)), self._clock(), limit, window_s)
            txn.put(raw_key, state.pack())
        return decision


class HttpxOriginClient:
    """The OriginClient port over one pooled httpx.AsyncClient."""

    def __init__(self, base_url: str, *, max_connections: int = 200,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url,
            transport=transport,
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
        except (httpx.LocalProtocolError, UnicodeEncodeError) as exc:
            # Refused by our own HTTP client before anything was sent (a header it cannot write): the
            # request's fault, not the origin's, so it must not count towards opening the breaker.
            raise errors.UnsendableRequest(f"this request cannot be sent to the origin ({exc})",
                                           code="unforwardable_request") from exc
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
