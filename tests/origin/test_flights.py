"""Coalescing at the origin: identical requests in flight share one generation."""

from __future__ import annotations

import asyncio
import json

from edge.memory import MemoryKV
from edge.ports import OriginRequest
from origin.app import OriginState, build_app
from origin.generators.base import GenerationError, Piece
from origin.generators.simulator import SimulatedGenerator
from origin.writeback import KVAnswerWriter
from shared import signing, wire
from tests.helpers import SECRET, AsgiOrigin, make_rig, read_body, sse_events, sse_text


def signed(body: dict[str, object], *, cache_key: str | None = None) -> OriginRequest:
    raw = json.dumps(body).encode()
    headers = {"content-type": "application/json", wire.TENANT_HEADER: "acme"}
    if cache_key:
        headers.update({wire.CACHE_KEY_HEADER: cache_key, wire.CACHE_TTL_HEADER: "600"})
    headers.update(signing.sign(SECRET, "POST", "/v1/chat/completions", raw, __import__("time").time(), headers))
    return OriginRequest("/v1/chat/completions", raw, headers, stream=bool(body.get("stream")))


def question(text: str, *, stream: bool = False) -> dict[str, object]:
    return {"model": "m", "messages": [{"role": "user", "content": text}], "stream": stream}


class TestOriginCoalescing:
    async def test_fifty_concurrent_identical_misses_cause_one_generation(self) -> None:
        """50 identical requests at once (half streaming) run the model once and all get the same answer."""
        generator = SimulatedGenerator(ttft_s=0.05, tokens_per_s=500)
        kv = MemoryKV()
        origin = AsgiOrigin(build_app(OriginState(generator=generator, writer=KVAnswerWriter(kv), secret=SECRET)))
        requests = [signed(question("same?", stream=i % 2 == 1), cache_key="ans/acme/s/k1") for i in range(50)]
        responses = await asyncio.gather(*(origin.send(r) for r in requests))
        bodies = [await read_body(r) for r in responses]  # type: ignore[arg-type]
        assert generator.generations == 1
        assert all(r.status == 200 for r in responses)
        plain = {b for b in bodies if not b.startswith(b"data:")}
        assert len(plain) == 1
        text = wire.answer_text(json.loads(plain.pop()))
        assert {sse_text(b) for b in bodies if b.startswith(b"data:")} == {text}
        assert kv.writes == 1

    async def test_uncached_identical_requests_coalesce_too(self) -> None:
        """Without a cache key, identical request bodies still share one generation."""
        generator = SimulatedGenerator(ttft_s=0.05)
        origin = AsgiOrigin(build_app(OriginState(generator=generator, writer=KVAnswerWriter(MemoryKV()),
                                                  secret=SECRET)))
        await asyncio.gather(*(origin.send(signed(question("q"))) for _ in range(5)))
        assert generator.generations == 1

    async def test_late_follower_of_a_stream_gets_the_whole_stream(self) -> None:
        """A streaming request that joins mid-generation replays the pieces it missed, then follows."""
        generator = SimulatedGenerator(ttft_s=0.0, tokens_per_s=100, answer_tokens=20)
        origin = AsgiOrigin(build_app(OriginState(generator=generator, writer=KVAnswerWriter(MemoryKV()),
                                                  secret=SECRET)))
        first = await origin.send(signed(question("late", stream=True), cache_key="ans/acme/s/late"))
        await asyncio.sleep(0.08)
        second = await origin.send(signed(question("late", stream=True), cache_key="ans/acme/s/late"))
        one, two = await asyncio.gather(read_body(first), read_body(second))  # type: ignore[arg-type]
        assert generator.generations == 1
        assert second.headers["x-eaves-coalesced"] == "follower"
        assert sse_text(one) == sse_text(two) and sse_text(one).startswith("Simulated answer to: late.")
        assert sse_events(two)[-1] == "[DONE]"

    async def test_a_failed_generation_fails_every_follower_and_is_not_cached(self) -> None:
        """When the shared generation breaks, every waiting request gets the error and the KV stays empty."""
        generator = SimulatedGenerator(ttft_s=0.02, fail_after_tokens=3)
        kv = MemoryKV()
        origin = AsgiOrigin(build_app(OriginState(generator=generator, writer=KVAnswerWriter(kv), secret=SECRET)))
        responses = await asyncio.gather(*(origin.send(signed(question("boom"), cache_key="ans/acme/s/b"))
                                           for _ in range(3)))
        assert [r.status for r in responses] == [502, 502, 502]
        assert generator.generations == 1 and kv.writes == 0


class TestEdgeCoalescing:
    async def test_fifty_concurrent_identical_misses_through_the_edge_cause_one_generation(self) -> None:
        """At the edge, 50 identical misses make one origin call and one generation; all get the answer."""
        rig = await make_rig()
        responses = await asyncio.gather(*(rig.chat("what is eaves?") for _ in range(50)))
        bodies = {await read_body(r) for r in responses}
        assert rig.generator.generations == 1
        assert rig.origin.calls == 1
        assert len(bodies) == 1
        assert sum(1 for r in responses if r.header("x-edge-coalesced") == "1") == 49

    async def test_streaming_followers_at_the_edge_get_the_full_stream(self) -> None:
        """Identical streaming misses share one origin stream; each client sees it from the start."""
        rig = await make_rig()
        responses = await asyncio.gather(*(rig.chat("stream me", stream=True) for _ in range(10)))
        raws = await asyncio.gather(*(read_body(r) for r in responses))
        assert rig.origin.calls == 1 and rig.generator.generations == 1
        assert len({sse_text(raw) for raw in raws}) == 1
        assert all(sse_events(raw)[-1] == "[DONE]" for raw in raws)


class ScriptedGenerator:
    """A generator that yields given pieces, then optionally fails."""

    name = "scripted"

    def __init__(self, pieces: list[str], fail: bool = False, usage: dict[str, int] | None = None) -> None:
        self.pieces, self.fail, self.usage, self.generations = pieces, fail, usage, 0

    def count_prompt_tokens(self, request: object) -> int:
        return 7

    async def stream(self, request: object):  # type: ignore[no-untyped-def]
        self.generations += 1
        for text in self.pieces:
            yield Piece(text, 1)
        if self.usage:
            yield Piece("", 0, self.usage)
        if self.fail:
            raise GenerationError("scripted failure")


class TestAccounting:
    async def test_usage_block_counts_tokens_time_and_cost(self) -> None:
        """The completion's usage holds OpenAI's token counts plus eaves' time and cost estimate."""
        rig = await make_rig(ScriptedGenerator(["a", "b", "c"]))  # type: ignore[arg-type]
        body = json.loads(await read_body(await rig.chat("count")))
        usage = body["usage"]
        assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (7, 3, 10)
        assert usage["eaves"]["generator"] == "scripted"
        assert usage["eaves"]["estimated_cost_usd"] > 0 and usage["eaves"]["generation_ms"] >= 0
        totals = rig.origin_state.counters
        assert totals["prompt_tokens"] == 7 and totals["completion_tokens"] == 3 and totals["generations"] == 1

    async def test_exact_usage_from_the_backend_replaces_the_estimate(self) -> None:
        """A backend's own usage report (an OpenAI-compatible API's last chunk) wins over counting."""
        rig = await make_rig(ScriptedGenerator(["x"], usage={"prompt_tokens": 11, "completion_tokens": 5}))  # type: ignore[arg-type]
        usage = json.loads(await read_body(await rig.chat("exact")))["usage"]
        assert (usage["prompt_tokens"], usage["completion_tokens"]) == (11, 5)
