"""Streaming at the edge: pass-through, heartbeats, broken streams, cached replays."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from edge import errors, streaming
from origin.generators.simulator import SimulatedGenerator
from shared import sse
from tests.helpers import make_rig, read_body, sse_events, sse_text


async def source(chunks: list[bytes], *, delay: float = 0.0, fail: bool = False) -> AsyncIterator[bytes]:
    for chunk in chunks:
        await asyncio.sleep(delay)
        yield chunk
    if fail:
        raise errors.UpstreamError("the origin's stream broke", code="origin_stream_broken")


async def drain(body: AsyncIterator[bytes]) -> list[bytes]:
    return [chunk async for chunk in body]


class TestRelay:
    async def test_chunks_pass_through_unchanged_as_they_arrive(self) -> None:
        """Each origin chunk is yielded as-is, in order, with nothing added to a clean stream."""
        chunks = [b'data: {"a":1}\n\n', b'data: {"b":2}\n\n', sse.DONE]
        assert await drain(streaming.relay(source(chunks), heartbeat_s=1.0)) == chunks

    async def test_first_chunk_is_not_held_back(self) -> None:
        """The first chunk reaches the client while the origin is still producing the rest: the origin sends
        its tail only after the client has the first chunk, which deadlocks (and fails) any relay that
        buffers."""
        client_has_first = asyncio.Event()

        async def gated_tail() -> AsyncIterator[bytes]:
            yield b'data: {"first":1}\n\n'
            await client_has_first.wait()
            yield sse.DONE

        async def consume() -> list[bytes]:
            out = []
            async for chunk in streaming.relay(gated_tail(), heartbeat_s=None):
                out.append(chunk)
                client_has_first.set()
            return out

        # The timeout only turns a deadlock into a failure; nothing here depends on speed.
        assert await asyncio.wait_for(consume(), timeout=30) == [b'data: {"first":1}\n\n', sse.DONE]

    async def test_heartbeats_while_the_origin_is_silent(self) -> None:
        """SSE comments go out while the first token is late (the origin answers only once the client has seen
        three of them), and the stream then continues intact."""
        heartbeats_seen = asyncio.Event()

        async def silent_then_answer() -> AsyncIterator[bytes]:
            await heartbeats_seen.wait()
            yield b'data: {"x":1}\n\n'
            yield sse.DONE

        async def consume() -> list[bytes]:
            out = []
            async for chunk in streaming.relay(silent_then_answer(), heartbeat_s=0.01):
                out.append(chunk)
                if out.count(sse.HEARTBEAT) == 3:
                    heartbeats_seen.set()
            return out

        out = await asyncio.wait_for(consume(), timeout=30)
        assert out[:3] == [sse.HEARTBEAT] * 3
        assert [c for c in out if c != sse.HEARTBEAT] == [b'data: {"x":1}\n\n', sse.DONE]

    async def test_broken_stream_ends_with_an_error_event(self) -> None:
        """An origin stream that raises mid-way ends with an error event a client can see."""
        out = await drain(streaming.relay(source([b'data: {"x":1}\n\n'], fail=True), heartbeat_s=None))
        error = json.loads(sse_events(out[-1])[0])["error"]
        assert error["code"] == "origin_stream_broken" and "incomplete" in error["message"]

    async def test_truncated_stream_ends_with_an_error_event(self) -> None:
        """A stream that closes cleanly but without [DONE] is reported as incomplete."""
        out = await drain(streaming.relay(source([b'data: {"x":1}\n\n']), heartbeat_s=None))
        assert json.loads(sse_events(out[-1])[0])["error"]["code"] == "origin_stream_truncated"

    async def test_an_origin_error_event_is_not_doubled(self) -> None:
        """When the origin already sent an error event, the edge adds none of its own."""
        out = await drain(streaming.relay(source([sse.error_event("model failed")]), heartbeat_s=None))
        assert len(out) == 1


class TestReplay:
    def test_stored_completion_replays_as_a_stream(self) -> None:
        """A stored completion becomes role, content and finish chunks plus [DONE], with its usage."""
        body = json.dumps({"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
                           "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi there"},
                                        "finish_reason": "stop"}],
                           "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}).encode()
        raw = streaming.replay(body)
        events = sse_events(raw)
        assert sse_text(raw) == "hi there" and events[-1] == "[DONE]"
        assert json.loads(events[-2])["usage"]["total_tokens"] == 3


class TestThroughTheEdge:
    async def test_stream_then_hit_replays_from_the_kv_without_the_origin(self) -> None:
        """A streamed miss is cached once complete; the same question then streams from the KV."""
        rig = await make_rig()
        first = await rig.chat("How do I reset my password?", stream=True)
        assert first.header("x-edge-route") == "miss" and first.content_type.startswith("text/event-stream")
        text = sse_text(await read_body(first))
        second = await rig.chat("How do I reset my password?", stream=True)
        assert second.header("x-edge-route") == "hit" and second.content_type == sse.MEDIA_TYPE
        assert sse_text(await read_body(second)) == text
        plain = await rig.chat("How do I reset my password?")
        assert json.loads(await read_body(plain))["choices"][0]["message"]["content"] == text
        assert rig.origin.calls == 1

    async def test_a_stored_body_that_is_not_a_completion_is_a_miss_for_a_stream(self) -> None:
        """An entry that cannot be replayed as a stream (not a chat completion) is regenerated, not a crash."""
        rig = await make_rig()
        await rig.chat("What is a cache?")
        [entry_key] = [k.name for k in (await rig.kv.list(prefix="ans/")).keys]
        entry = await rig.kv.get(entry_key)
        assert entry is not None
        await rig.kv.put(entry_key, b"not json", expiration_ttl=3600, metadata=entry.metadata)
        streamed = await rig.chat("What is a cache?", stream=True)
        assert streamed.header("x-edge-route") == "miss"
        assert sse_events(await read_body(streamed))[-1] == "[DONE]"
        assert rig.origin.calls == 2

    async def test_broken_generation_reaches_the_client_as_an_error_event_and_is_not_cached(self) -> None:
        """A generation that fails mid-stream ends the client's stream with an error; nothing is stored."""
        rig = await make_rig(SimulatedGenerator(ttft_s=0.0, tokens_per_s=1000, fail_after_tokens=4))
        raw = await read_body(await rig.chat("break please", stream=True))
        events = sse_events(raw)
        assert json.loads(events[-1])["error"]["code"] == "generation_failed"
        assert "[DONE]" not in events and sse_text(raw)  # some text arrived before the break
        assert [k.name for k in (await rig.kv.list(prefix="ans/")).keys] == []

    async def test_heartbeats_while_the_first_token_is_slow(self) -> None:
        """With a long time to first token the client receives SSE comments before the answer."""
        rig = await make_rig(SimulatedGenerator(ttft_s=0.3, tokens_per_s=1000), heartbeat_s=0.05)
        raw = await read_body(await rig.chat("slow one", stream=True))
        assert raw.count(sse.HEARTBEAT) >= 3
        assert raw.index(sse.HEARTBEAT) < raw.index(b'"content":"Simulated')
        assert sse_events(raw)[-1] == "[DONE]"
