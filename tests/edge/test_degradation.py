"""Caching semantics and graceful degradation, in-process: freshness rules, the breaker, fallback tiers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.app import EdgeApp
from edge.http import EdgeResponse
from edge.memory import MemoryRateLimiter, TaskBackground
from origin.generators.base import GenerationRequest, Piece
from origin.generators.simulator import SimulatedGenerator
from shared.cache_keys import InvalidTenant, validate_tenant
from shared.intent.routing import Intent, Route
from tests.helpers import read_body, sse_text
from tests.world import World, body_of, make_world

TTL, STALE, KEEP = 60, 120, 3600


@dataclass
class Policy:
    answer: str | None = None
    version: str = "test-policy-1"

    def route(self, intent: Intent, text: str = "") -> Route:
        return Route("cache", ttl_s=TTL, stale_s=STALE, stale_if_error_s=KEEP, answer=self.answer)


async def world_with(answer: str | None = None, **settings: object) -> World:
    return await make_world(policy=Policy(answer), breaker_failures=2, breaker_cooldown_s=30.0, **settings)


async def drain(world: World) -> None:
    background = world.edge.background
    assert isinstance(background, TaskBackground)
    await background.drain()


class TestStaleWhileRevalidate:
    async def test_stale_served_then_refreshed_once(self) -> None:
        """Past the TTL the stale answer is served at once, and one background refresh replaces it."""
        world = await world_with()
        first = await world.chat("q")
        world.clock.advance(TTL + 1)
        stale = await asyncio.gather(*(world.chat("q") for _ in range(5)))
        assert [r.header("x-edge-route") for r in stale] == ["stale"] * 5
        assert all(body_of(r) == body_of(first) for r in stale)
        await drain(world)
        assert world.simulator.generations == 2  # the first miss + exactly one refresh
        refreshed = await world.chat("q")
        assert refreshed.header("x-edge-route") == "hit" and refreshed.header("age") == "0"

    async def test_one_isolate_refreshes_a_key_once_even_when_the_kv_yields(self) -> None:
        """The per-isolate in-flight set alone: with a KV that yields on every read (as a real one does), five
        concurrent stale hits would all read "no refresh mark" before any is written; still one refresh."""
        world = await world_with()
        await world.chat("q")
        read = world.kv.get

        async def yielding_get(key: str):  # type: ignore[no-untyped-def]
            entry = await read(key)
            await asyncio.sleep(0)  # the answer is on the wire: other tasks run before it arrives
            return entry

        world.kv.get = yielding_get  # type: ignore[method-assign]
        world.clock.advance(TTL + 1)
        stale = await asyncio.gather(*(world.chat("q") for _ in range(5)))
        assert [r.header("x-edge-route") for r in stale] == ["stale"] * 5
        await drain(world)
        assert world.edge.stats["refreshed"] == 1

    async def test_two_isolates_refresh_a_key_once_through_the_kv_mark(self) -> None:
        """The KV `rfr/` mark alone: a second isolate (its own in-flight set) that serves the same stale answer
        while the first isolate's refresh is still at the origin does not refresh it again."""
        world = await world_with()
        gate, entered = asyncio.Event(), asyncio.Event()
        gate.set()
        generate = world.simulator.stream

        async def gated(request: GenerationRequest) -> AsyncIterator[Piece]:
            entered.set()
            await gate.wait()
            async for piece in generate(request):
                yield piece

        world.simulator.stream = gated  # type: ignore[method-assign]
        first = world.edge
        second = EdgeApp(first.settings, world.kv, first.origin, MemoryRateLimiter(world.clock), world.clock,
                         TaskBackground(), first.classifier, first.policy)
        await world.chat("q")
        world.clock.advance(TTL + 1)
        gate.clear()
        entered.clear()
        assert (await world.chat("q")).header("x-edge-route") == "stale"
        await entered.wait()  # the first isolate's refresh is at the origin now
        world.edge = second
        assert (await world.chat("q")).header("x-edge-route") == "stale"
        gate.set()
        await drain(world)
        world.edge = first
        await drain(world)
        assert (first.stats["refreshed"], second.stats["refreshed"]) == (1, 0)
        assert (await world.chat("q")).header("x-edge-route") == "hit"

    async def test_past_stale_window_is_a_miss(self) -> None:
        """Past the stale-while-revalidate window a healthy origin regenerates in the foreground."""
        world = await world_with()
        await world.chat("q")
        world.clock.advance(TTL + STALE + 1)
        assert (await world.chat("q")).header("x-edge-route") == "miss"

    async def test_failed_refresh_keeps_stale_entry(self) -> None:
        """A refresh that fails leaves the stale answer in place for the next request."""
        world = await world_with()
        await world.chat("q")
        world.clock.advance(TTL + 1)
        world.simulator.fail_rate = 1.0
        await world.chat("q")
        await drain(world)
        assert world.edge.stats["refresh_failed"] == 1
        world.clock.advance(61)  # past the cross-process refresh mark
        assert (await world.chat("q")).header("x-edge-route") == "stale"


class TestRequestControls:
    async def test_no_cache_regenerates_and_stores(self) -> None:
        """Cache-Control: no-cache skips the cached answer but stores the new one."""
        world = await world_with()
        await world.chat("q")
        forced = await world.chat("q", headers={"cache-control": "no-cache"})
        assert forced.header("x-edge-route") == "miss" and world.simulator.generations == 2
        assert (await world.chat("q")).header("x-edge-route") == "hit"

    async def test_no_store_neither_reads_nor_writes(self) -> None:
        """Cache-Control: no-store never reads or writes the KV."""
        world = await world_with()
        await world.chat("private", headers={"cache-control": "no-store"})
        assert await world.answer_keys() == []
        assert (await world.chat("private")).header("x-edge-route") == "miss"

    async def test_max_age(self) -> None:
        """max-age=N accepts a cached answer up to N seconds old, else regenerates."""
        world = await world_with()
        await world.chat("q")
        world.clock.advance(30)
        assert (await world.chat("q", headers={"cache-control": "max-age=40"})).header("x-edge-route") == "hit"
        assert (await world.chat("q", headers={"cache-control": "max-age=10"})).header("x-edge-route") == "miss"


class TestFallbackTiers:
    async def test_stale_if_error(self) -> None:
        """Past the stale window, a failing origin is covered by the old answer, labelled stale."""
        world = await world_with()
        first = await world.chat("q")
        world.clock.advance(TTL + STALE + 10)
        world.simulator.fail_rate = 1.0
        response = await world.chat("q")
        assert response.status == 200 and response.header("x-edge-route") == "stale"
        assert response.header("x-edge-fallback-reason") == "origin_error"
        assert body_of(response) == body_of(first)
        assert world.edge.stats["fallback_stale"] == 1

    async def test_canned_answer_when_nothing_cached(self) -> None:
        """With no stale answer, the intent's canned answer is served as a fallback."""
        world = await world_with(answer="We are busy; please try again shortly.")
        world.simulator.fail_rate = 1.0
        response = await world.chat("q")
        assert response.status == 200 and response.header("x-edge-route") == "fallback"
        assert body_of(response)["choices"][0]["message"]["content"].startswith("We are busy")

    async def test_error_tier_says_what_to_do(self) -> None:
        """With neither, the client gets an error with Retry-After that says what happened and what to do."""
        world = await world_with()
        world.simulator.fail_rate = 1.0
        response = await world.chat("q")
        assert response.status == 502 and response.header("x-edge-route") == "fallback"
        assert int(response.header("retry-after") or 0) > 0
        message = body_of(response)["error"]["message"]
        assert "no cached or canned answer" in message and "Retry after" in message

    async def test_nothing_written_by_failures(self) -> None:
        """Failed generations leave no entry behind."""
        world = await world_with()
        world.simulator.fail_rate = 1.0
        await world.chat("q")
        assert await world.answer_keys() == []


class TestBreaker:
    async def test_open_breaker_answers_at_once_then_probe_closes_it(self) -> None:
        """After repeated failures the origin is not called; after the cooldown one probe closes the circuit."""
        world = await world_with()
        world.simulator.fail_rate = 1.0
        for i in range(2):
            await world.chat(f"q{i}")
        assert world.edge.breaker.state == "open"
        calls = world.simulator.generations
        refused = await world.chat("q-new")
        assert refused.status == 503 and body_of(refused)["error"]["code"] == "circuit_open"
        assert 0 < int(refused.header("retry-after") or 0) <= 30
        assert world.simulator.generations == calls  # the origin was not called
        world.clock.advance(30)
        world.simulator.fail_rate = 0.0
        assert (await world.chat("q-probe")).header("x-edge-route") == "miss"
        assert world.edge.breaker.state == "closed"

    async def test_open_breaker_still_serves_stale(self) -> None:
        """While open, an old answer is served at once instead of an error."""
        world = await world_with()
        await world.chat("known")
        world.clock.advance(TTL + STALE + 5)
        world.simulator.fail_rate = 1.0
        for i in range(2):
            await world.chat(f"q{i}")
        response = await world.chat("known")
        assert response.header("x-edge-route") == "stale"
        assert response.header("x-edge-fallback-reason") == "circuit_open"


class TenantEcho(SimulatedGenerator):
    """Answers with the tenant the origin was told and the question it was asked, so a crossed answer, or an
    answer to another question, is visible."""

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Piece]:
        self.generations += 1
        yield Piece(f"{request.tenant}\x1f{request.prompt}")


# Tenant names: any non-blank Unicode text (a stored key record could hold one), half of them drawn from the
# valid id set (shared.cache_keys.TENANT_RULE), including names shaped like the old hashed form. Prompts: any text,
# tagged with their index so that two different questions never share a cache entry by normalisation
# (which questions the cache may merge is tests/shared/test_cache_keys.py's concern, not isolation's).
tenant_names = st.lists(st.one_of(
    st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True),
    st.from_regex(r"h-[0-9a-f]{32}", fullmatch=True),
    st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=12).filter(lambda n: n.strip() != "")),
    min_size=2, max_size=8, unique=True)
questions = st.lists(st.text(st.characters(exclude_categories=("Cs",)), max_size=30), min_size=1, max_size=6)
steps = st.lists(st.tuples(st.integers(0, 7), st.integers(0, 5), st.sampled_from([0, 0, 61, 200, 4000]),
                           st.booleans()), min_size=1, max_size=25)


async def answer_text(response: EdgeResponse) -> str:
    raw = await read_body(response)
    if response.content_type.startswith("text/event-stream"):
        return sse_text(raw)
    return str(json.loads(raw)["choices"][0]["message"]["content"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tenant_names, questions, steps)
def test_every_answer_is_to_the_question_that_tenant_asked(tenants: list[str], texts: list[str],
                                                           sequence: list[tuple[int, int, int, bool]]) -> None:
    """Whatever the tenants' names, the questions, their order, timing (fresh, stale, expired) and whether
    they stream, every response to a valid tenant is a 200 whose answer was generated for that tenant and that
    question; an invalid tenant id gets a clean 403 and never reaches the origin or the answer cache."""
    prompts = [f"q{index}: {text}" for index, text in enumerate(texts)]

    async def run() -> None:
        world = await world_with(answer=None)
        world.origin.generator = TenantEcho(ttft_s=0.0, tokens_per_s=0.0)
        for index, tenant in enumerate(tenants):
            await world.add_key(f"t{index}", tenant)
        for who, which, wait, stream in sequence:
            tenant, prompt = tenants[who % len(tenants)], prompts[which % len(prompts)]
            world.clock.advance(wait)
            body = {"model": "m", "stream": stream, "messages": [{"role": "user", "content": prompt}]}
            response = await world.chat(key=f"t{who % len(tenants)}", body=body)
            try:
                validate_tenant(tenant)
            except InvalidTenant:
                assert response.status == 403, (tenant, await read_body(response))
                assert json.loads(await read_body(response))["error"]["code"] == "invalid_tenant"
                continue
            assert response.status == 200, (tenant, prompt, await read_body(response))
            assert await answer_text(response) == f"{tenant}\x1f{prompt}"
            await drain(world)

    asyncio.run(run())
