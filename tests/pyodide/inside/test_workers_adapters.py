"""The Workers adapters (edge.workers) against the JS binding fakes and a real server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import js
import pytest
from eaves_fakes import ExecutionContext, KvNamespace, Ratelimit

from edge.errors import UpstreamError, UpstreamTimeout
from edge.memory import MemoryRateLimiter
from edge.ports import OriginRequest
from edge.workers._js import js_object
from edge.workers.background import WorkersBackground
from edge.workers.clock import WorkersClock
from edge.workers.kv import WorkersKV
from edge.workers.origin import JsStreamBody, WorkersOrigin
from edge.workers.ratelimit import WorkersRateLimiter
from shared.kv import KVLimitError
from tests.pyodide.inside.sdk import sdk_env


def kv_binding() -> Any:
    """A KV namespace stand-in as production hands it over: wrapped by the workers SDK's env wrapper."""
    return sdk_env(EAVES_KV=KvNamespace.new()).EAVES_KV


def rate_limit_binding(limit: int, period: int) -> Any:
    return sdk_env(EAVES_RATE_LIMIT=Ratelimit.new(js_object({"limit": limit, "period": period}))).EAVES_RATE_LIMIT


class TestSdkWrapping:
    def test_the_sdk_wraps_the_stand_ins_as_it_wraps_workerds_bindings(self) -> None:
        """The stand-ins carry workerd's constructor names, so the SDK's env wrapper applies to them."""
        from workers.rpc import _EnvWrapper

        env = sdk_env(EAVES_KV=KvNamespace.new(), EAVES_RATE_LIMIT=Ratelimit.new(js_object({"limit": 1, "period": 10})),
                      EAVES_ORIGIN_URL="http://o")
        assert isinstance(env, _EnvWrapper)
        assert KvNamespace.name == "KvNamespace" and Ratelimit.name == "Ratelimit"
        assert type(env.EAVES_KV).__name__ == "_BindingWrapper"
        assert type(env.EAVES_RATE_LIMIT).__name__ == "_BindingWrapper"
        assert env.EAVES_ORIGIN_URL == "http://o"

    async def test_wrapped_results_are_python(self) -> None:
        """Through the wrapper an ArrayBuffer comes back as a memoryview, not a JS proxy with to_bytes()."""
        binding = kv_binding()
        await binding.put("k", b"\x00\xff")
        result = await binding.getWithMetadata("k", "arrayBuffer")
        assert isinstance(result["value"], memoryview) and bytes(result["value"]) == b"\x00\xff"
        assert result["metadata"] is None

    def test_raw_js_bindings_are_refused(self) -> None:
        """A binding that skipped the SDK's wrapper is a wiring mistake, named at construction."""
        with pytest.raises(TypeError, match="workers SDK"):
            WorkersKV(KvNamespace.new())
        with pytest.raises(TypeError, match="workers SDK"):
            WorkersRateLimiter(Ratelimit.new(js_object({"limit": 1, "period": 10})), limit=1, period_s=10)


class TestWorkersKV:
    async def test_hit_through_the_wrapped_binding(self) -> None:
        """A stored answer read back through the SDK-wrapped binding: bytes and a plain metadata dict."""
        kv = WorkersKV(kv_binding())
        await kv.put("answer:hit", b'{"choices":[]}', expiration_ttl=600, metadata={"route": "faq", "n": [1, 2]})
        entry = await kv.get("answer:hit")
        assert entry is not None
        assert type(entry.value) is bytes and entry.value == b'{"choices":[]}'
        assert type(entry.metadata) is dict and entry.metadata == {"route": "faq", "n": [1, 2]}

    async def test_miss_through_the_wrapped_binding(self) -> None:
        """A missing key through the SDK-wrapped binding is None, not an error."""
        kv = WorkersKV(kv_binding())
        assert await kv.get("answer:absent") is None

    async def test_put_of_a_large_value_is_not_walked_byte_by_byte(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A 4 MiB value crosses the SDK's argument check as one bytes object (one buffer copy in to_js):
        a Uint8Array or memoryview would be checked element by element, millions of calls."""
        import workers.rpc

        original = workers.rpc._raise_on_disabled_type
        calls = 0

        def counting(value: Any) -> None:
            nonlocal calls
            calls += 1
            original(value)

        monkeypatch.setattr(workers.rpc, "_raise_on_disabled_type", counting)
        value = bytes(range(256)) * (4 * 4096)
        kv = WorkersKV(kv_binding())
        await kv.put("answer:large", value, metadata={"route": "faq"})
        assert calls < 20
        entry = await kv.get("answer:large")
        assert entry is not None and entry.value == value

    async def test_round_trip(self) -> None:
        """Bytes, metadata and expiry survive the trip through the binding."""
        kv = WorkersKV(kv_binding())
        await kv.put("answer:1", b"\x00\xff{}", expiration_ttl=60, metadata={"model": "m", "n": 2})
        entry = await kv.get("answer:1")
        assert entry is not None
        assert entry.value == b"\x00\xff{}"
        assert entry.metadata == {"model": "m", "n": 2}
        assert await kv.get("absent") is None
        await kv.delete("answer:1")
        assert await kv.get("answer:1") is None

    async def test_limits_raise_the_projects_error(self) -> None:
        """Refusals are shared.kv.KVLimitError, as in the emulator."""
        kv = WorkersKV(kv_binding())
        with pytest.raises(KVLimitError):
            await kv.put("k" * 513, b"v")
        with pytest.raises(KVLimitError):
            await kv.put("k", b"v", expiration_ttl=59)
        with pytest.raises(KVLimitError):
            await kv.put("k", b"v", metadata={"m": "x" * 1100})

    async def test_binding_refusals_are_translated(self) -> None:
        """A refusal that only the binding detects still maps to KVLimitError, from the JS error."""
        kv = WorkersKV(kv_binding())
        kv._kv = _Refusing()
        with pytest.raises(KVLimitError) as caught:
            await kv.put("k", b"v")
        assert "413" in str(caught.value) and caught.value.__cause__ is not None

    async def test_list_pages(self) -> None:
        """list() pages with a cursor and reports metadata and expiration."""
        kv = WorkersKV(kv_binding())
        for i in range(5):
            await kv.put(f"p:{i}", b"v", metadata={"i": i})
        first = await kv.list(prefix="p:", limit=3)
        assert [k.name for k in first.keys] == ["p:0", "p:1", "p:2"]
        assert first.keys[0].metadata == {"i": 0}
        assert not first.list_complete and first.cursor
        rest = await kv.list(prefix="p:", cursor=first.cursor)
        assert [k.name for k in rest.keys] == ["p:3", "p:4"]
        assert rest.list_complete and rest.cursor is None


class _Refusing:
    async def put(self, *args: Any) -> None:
        await js.Promise.reject(js.Error.new("KV PUT failed: 413 Value length of 1 exceeds limit of 0."))


class TestWorkersOrigin:
    async def test_buffered_request(self, server: str) -> None:
        """Method, path, headers and body reach the origin; status, headers and body come back."""
        origin = WorkersOrigin(server + "/")
        response = await origin.send(OriginRequest("/v1/chat?x=1", b'{"a":1}', {"x-eaves-sig": "s"}))
        assert response.status == 200
        assert response.headers["content-type"] == "application/json"
        assert isinstance(response.body, bytes)
        echoed = json.loads(response.body)
        assert echoed["method"] == "POST" and echoed["path"] == "/v1/chat?x=1"
        assert echoed["body"] == '{"a":1}' and echoed["headers"]["x-eaves-sig"] == "s"

    async def test_error_status_is_a_response(self, server: str) -> None:
        """An origin's 5xx is an answer, not an exception: the core decides about fallbacks."""
        response = await WorkersOrigin(server).send(OriginRequest("/status/503", b""))
        assert response.status == 503

    async def test_streams_without_buffering(self, server: str) -> None:
        """A streamed body arrives chunk by chunk, as an async iterator of bytes."""
        response = await WorkersOrigin(server).send(OriginRequest("/stream", b"", stream=True))
        assert not isinstance(response.body, bytes)
        chunks = [chunk async for chunk in response.body]
        assert b"".join(chunks) == b"one,two,three"
        assert len(chunks) >= 2

    async def test_stream_passes_through_untouched(self, server: str) -> None:
        """The entry point can hand the JS stream itself to the client's Response, with no copy."""
        response = await WorkersOrigin(server).send(OriginRequest("/stream", b"", stream=True))
        assert isinstance(response.body, JsStreamBody)
        client_response = js.Response.new(response.body.js_stream)
        assert await client_response.text() == "one,two,three"

    async def test_stream_closed_early_cancels_the_origin(self, server: str) -> None:
        """A consumer that stops after the first chunk cancels the read from the origin."""
        response = await WorkersOrigin(server).send(OriginRequest("/stream?gap=1", b"", stream=True))
        assert isinstance(response.body, JsStreamBody)
        assert await anext(response.body) == b"one,"
        await response.body.aclose()
        with pytest.raises(StopAsyncIteration):
            await anext(response.body)

    async def test_a_stream_that_breaks_off_is_an_upstream_error(self, server: str) -> None:
        """A connection dropped mid-body ends the iteration with UpstreamError (origin_stream_broken), never
        with the JS error of the cleanup that follows (cancel() on a broken stream rejects too)."""
        response = await WorkersOrigin(server).send(OriginRequest("/broken", b"", stream=True))
        chunks: list[bytes] = []
        with pytest.raises(UpstreamError) as caught:
            async for chunk in response.body:
                chunks.append(chunk)
        assert caught.value.code == "origin_stream_broken" and chunks == [b"one,"]

    async def test_timeout(self, server: str) -> None:
        """No answer within timeout_s -> UpstreamTimeout, from the abort."""
        with pytest.raises(UpstreamTimeout) as caught:
            await WorkersOrigin(server).send(OriginRequest("/slow", b"", timeout_s=0.2))
        assert caught.value.__cause__ is not None

    async def test_unreachable(self) -> None:
        """A closed port -> UpstreamError (not a timeout)."""
        with pytest.raises(UpstreamError) as caught:
            await WorkersOrigin("http://127.0.0.1:9").send(OriginRequest("/", b"", timeout_s=5))
        assert type(caught.value) is UpstreamError


class TestWorkersRateLimiter:
    async def test_counts_through_the_binding(self) -> None:
        """A budget equal to the binding's configuration is decided by the binding."""
        binding = rate_limit_binding(2, 60)
        limiter = WorkersRateLimiter(binding, limit=2, period_s=60)
        decisions = [await limiter.acquire("tenant:chat", 2, 60) for _ in range(3)]
        assert [d.allowed for d in decisions] == [True, True, False]
        assert decisions[-1].remaining == 0 and decisions[-1].reset_s == 60

    async def test_other_budgets_go_to_the_fallback(self) -> None:
        """A budget the binding cannot express goes to the fallback limiter."""
        binding = rate_limit_binding(2, 60)
        limiter = WorkersRateLimiter(binding, limit=2, period_s=60, fallback=MemoryRateLimiter())
        decision = await limiter.acquire("t", 100, 3600)
        assert decision.allowed and decision.limit == 100

    def test_refuses_periods_the_binding_lacks(self) -> None:
        """Only 10 s and 60 s periods exist."""
        with pytest.raises(ValueError, match="10 or 60"):
            WorkersRateLimiter(object(), limit=1, period_s=30)


class TestBackgroundAndClock:
    async def test_defer_runs_after_through_wait_until(self) -> None:
        """Work handed to defer() runs to completion via the ctx's waitUntil (patched by the SDK)."""
        from workers import WorkerEntrypoint

        class Probe(WorkerEntrypoint):
            pass

        ctx = ExecutionContext.new()
        probe = Probe(ctx, js.Object.new())  # the SDK's __init__ patches ctx.waitUntil, as in workerd
        done: list[str] = []

        async def work() -> None:
            await asyncio.sleep(0.001)
            done.append("written back")

        WorkersBackground(probe.ctx).defer(work())
        assert await ctx.drain() == 1
        assert done == ["written back"]

    async def test_clock(self) -> None:
        """now() is JavaScript's Date.now() in seconds; monotonic() is in seconds too (performance.now() counts
        milliseconds) and advances across a wait, which is when Workers lets it move."""
        clock = WorkersClock()
        assert abs(clock.now() - js.Date.now() / 1000) < 5
        first = clock.monotonic()
        await asyncio.sleep(0.05)
        waited = clock.monotonic() - first
        assert 0.04 <= waited < 30  # at least the wait (a lower bound cannot flake); seconds, not milliseconds
