"""The Responses API, the model list and OpenAI's streaming details, end to end in-process."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge import responses, streaming
from edge.http import EdgeResponse
from origin.generators.simulator import SimulatedGenerator
from shared import sse
from tests.world import World, body_of, make_world


async def read(response: EdgeResponse) -> bytes:
    if isinstance(response.body, bytes | bytearray):
        return bytes(response.body)
    return b"".join([part async for part in response.body])


def events(raw: bytes) -> list[tuple[str | None, Any]]:
    """(event name, data) of every event with data, heartbeats left out."""
    out: list[tuple[str | None, Any]] = []
    for block in raw.split(b"\n\n"):
        name = None
        data = None
        for line in block.split(b"\n"):
            if line.startswith(b"event: "):
                name = line[7:].decode()
            elif line.startswith(b"data: "):
                data = line[6:]
        if data is not None:
            out.append((name, data.decode() if data == b"[DONE]" else json.loads(data)))
    return out


async def respond(world: World, body: dict[str, Any], key: str = "acme", **headers: str) -> EdgeResponse:
    return await world.chat(body=body, key=key, path="/v1/responses", headers=headers)


class TestResponses:
    async def test_text_input_answered_as_a_response_then_hit(self) -> None:
        """A string input with instructions is answered as a Response object; asked again, from the KV."""
        world = await make_world()
        body = {"model": "m", "input": "How do I reset my password?", "instructions": "Be brief."}
        first = await respond(world, body)
        assert first.status == 200 and first.header("x-edge-route") == "miss"
        got = body_of(first)
        assert got["object"] == "response" and got["status"] == "completed" and got["id"].startswith("resp_")
        assert got["instructions"] == "Be brief." and got["store"] is False
        item = got["output"][0]
        assert item["type"] == "message" and item["role"] == "assistant"
        assert item["content"][0]["type"] == "output_text"
        assert item["content"][0]["text"].startswith("Simulated answer to: How do I reset my password?")
        assert got["usage"]["output_tokens"] > 0 and got["usage"]["input_tokens"] > 0
        second = await respond(world, body)
        assert second.header("x-edge-route") == "hit"
        assert body_of(second)["output"] == got["output"]
        assert world.simulator.generations == 1

    async def test_shares_the_cache_entry_with_the_equivalent_chat_request(self) -> None:
        """Message items with input_text parts ask what the same chat messages ask: one entry, one generation."""
        world = await make_world()
        await respond(world, {"model": "m", "input": [
            {"role": "system", "content": "Be brief."},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "What is KV?"}]}]})
        chat = await world.chat(body={"model": "m", "messages": [{"role": "system", "content": "Be brief."},
                                                                 {"role": "user", "content": "What is KV?"}]})
        assert chat.header("x-edge-route") == "hit"
        assert body_of(chat)["object"] == "chat.completion"
        assert world.simulator.generations == 1

    @pytest.mark.parametrize(("body", "param"), [
        ({"input": "hi", "previous_response_id": "resp_1"}, "previous_response_id"),
        ({"input": "hi", "background": True}, "background"),
        ({"input": "hi", "conversation": "conv_1"}, "conversation"),
        ({"input": "hi", "tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"input": "hi", "include": ["reasoning.encrypted_content"]}, "include"),
        ({"input": "hi", "frobnicate": 1}, "frobnicate"),
        ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]},
         "input[0].content[0].type"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
        ({"input": [{"type": "function_call_output", "call_id": "c", "output": "1"}]}, "input"),
        ({"input": []}, "input"),
        ({"input": "hi", "max_output_tokens": 0}, "max_output_tokens"),
    ])
    async def test_what_cannot_be_served_is_refused_naming_the_field(self, body: dict[str, Any], param: str) -> None:
        """A request the origin cannot serve gets a 400 naming the field, and nothing is generated or stored."""
        world = await make_world()
        response = await respond(world, body)
        assert response.status == 400
        error = body_of(response)["error"]
        assert error["param"] == param and error["type"] == "invalid_request_error"
        assert world.simulator.generations == 0 and await world.answer_keys() == []

    async def test_each_asker_gets_their_own_envelope_from_one_entry(self) -> None:
        """Two requests differing only in ``metadata`` share the answer, and each gets its own metadata back."""
        world = await make_world()
        first = body_of(await respond(world, {"input": "Same question", "metadata": {"page": "a"}}))
        for _ in range(2):  # the second time from the remembered rendering
            second = await respond(world, {"input": "Same question", "metadata": {"page": "b"}})
            assert second.header("x-edge-route") == "hit"
            assert body_of(second)["metadata"] == {"page": "b"}
            assert body_of(second)["output"] == first["output"]

    async def test_a_refused_body_is_refused_every_time(self) -> None:
        """A body that failed translation is not remembered: the same bytes are refused again."""
        world = await make_world()
        for _ in range(2):
            assert (await respond(world, {"input": "hi", "background": True})).status == 400

    async def test_prefer_respond_async_is_a_job_whose_answer_the_request_then_hits(self) -> None:
        """``Prefer: respond-async`` gives the job ticket as on chat; once done, the same request is a hit."""
        world = await make_world()
        body = {"input": "A long report, please"}
        accepted = await respond(world, body, prefer="respond-async")
        assert accepted.status == 202 and body_of(accepted)["id"].startswith("job_")
        for _ in range(100):
            if await world.answer_keys():
                break
            await asyncio.sleep(0.01)
        again = await respond(world, body)
        assert again.header("x-edge-route") == "hit" and body_of(again)["object"] == "response"

    async def test_authentication_comes_before_the_body(self) -> None:
        """An unauthenticated caller gets a 401 even for a body the edge would refuse."""
        world = await make_world()
        response = await respond(world, {"input": "hi", "background": True}, key="eav_wrong")
        assert response.status == 401

    async def test_stream_is_the_responses_events_live_and_replayed(self) -> None:
        """``stream: true`` gives OpenAI's event sequence with the text and usage; a hit replays the same."""
        world = await make_world()
        body = {"model": "m", "input": "Stream me", "stream": True}
        for route in ("miss", "hit"):
            response = await respond(world, body)
            assert response.header("x-edge-route") == route
            assert response.content_type.startswith(sse.MEDIA_TYPE)
            seen = events(await read(response))
            names = [name for name, _ in seen]
            assert names[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                                 "response.content_part.added"]
            assert names[-4:] == ["response.output_text.done", "response.content_part.done",
                                  "response.output_item.done", "response.completed"]
            assert all(data["type"] == name for name, data in seen)
            assert [data["sequence_number"] for _, data in seen] == list(range(len(seen)))
            deltas = "".join(data["delta"] for name, data in seen if name == "response.output_text.delta")
            done = seen[-1][1]["response"]
            assert done["output"][0]["content"][0]["text"] == deltas and deltas.startswith("Simulated answer")
            assert done["usage"]["output_tokens"] > 0
        assert world.simulator.generations == 1

    async def test_a_truncated_answer_is_incomplete(self) -> None:
        """An answer cut by max_output_tokens is ``incomplete`` with reason max_output_tokens."""
        world = await make_world(simulator=SimulatedGenerator(ttft_s=0.0, tokens_per_s=0.0, answer_tokens=32))
        got = body_of(await respond(world, {"input": "Cut me short", "max_output_tokens": 3}))
        assert got["status"] == "incomplete" and got["incomplete_details"] == {"reason": "max_output_tokens"}

    async def test_a_stream_that_breaks_ends_with_error_and_failed(self) -> None:
        """An origin failure mid-stream becomes an ``error`` event and ``response.failed``, as clients parse."""
        world = await make_world(simulator=SimulatedGenerator(ttft_s=0.0, tokens_per_s=0.0, fail_after_tokens=3))
        seen = events(await read(await respond(world, {"input": "Break", "stream": True})))
        names = [name for name, _ in seen]
        assert names[-2:] == ["error", "response.failed"]
        assert seen[-2][1]["message"] and seen[-2][1]["code"] == "generation_failed"
        assert seen[-1][1]["response"]["status"] == "failed"
        assert "response.completed" not in names
        assert await world.answer_keys() == []


class TestChatStreaming:
    async def stream(self, world: World, options: dict[str, Any] | None) -> list[dict[str, Any]]:
        body: dict[str, Any] = {"model": "m", "stream": True,
                                "messages": [{"role": "user", "content": "usage please"}]}
        if options is not None:
            body["stream_options"] = options
        seen = events(await read(await world.chat(body=body)))
        assert seen[-1] == (None, "[DONE]")
        return [data for _, data in seen[:-1]]

    async def test_include_usage_adds_a_last_chunk_without_choices(self) -> None:
        """With include_usage the usage comes in one extra chunk with ``choices: []`` and in no other, live
        and replayed."""
        world = await make_world()
        for _ in ("miss", "hit"):
            chunks = await self.stream(world, {"include_usage": True})
            assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0
            assert all("usage" not in c for c in chunks[:-1])
            assert chunks[-2]["choices"][0]["finish_reason"] == "stop"

    async def test_without_include_usage_no_chunk_has_usage(self) -> None:
        """Without include_usage no chunk carries the usage (as OpenAI streams), live and replayed."""
        world = await make_world()
        for _ in ("miss", "hit"):
            chunks = await self.stream(world, None)
            assert all("usage" not in c for c in chunks) and all(c["choices"] for c in chunks)

    async def test_finish_reason_length_when_max_tokens_cut_the_answer(self) -> None:
        """``max_tokens`` below the answer's length ends with ``finish_reason: "length"``."""
        world = await make_world(simulator=SimulatedGenerator(ttft_s=0.0, tokens_per_s=0.0, answer_tokens=32))
        response = await world.chat(body={"messages": [{"role": "user", "content": "long"}], "max_tokens": 2})
        assert body_of(response)["choices"][0]["finish_reason"] == "length"


class TestTools:
    async def test_tools_are_refused_by_a_generator_that_cannot_call_them(self) -> None:
        """The simulator cannot call tools: a 400 naming ``tools``, and nothing stored."""
        world = await make_world()
        tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
        response = await world.chat(body={"messages": [{"role": "user", "content": "call f"}], "tools": tools})
        assert response.status == 400
        error = body_of(response)["error"]
        assert error["param"] == "tools" and error["code"] == "tools_not_supported"
        assert "simulator" in error["message"]
        assert world.simulator.generations == 0 and await world.answer_keys() == []


class TestModels:
    async def test_lists_the_origins_models_behind_auth(self) -> None:
        """GET /v1/models lists the origin's default model; /v1/models/{id} one; unknown ids are 404."""
        world = await make_world()
        listed = await world.chat(method="GET", path="/v1/models", raw=b"")
        assert listed.status == 200
        got = body_of(listed)
        assert got["object"] == "list" and [m["id"] for m in got["data"]] == ["eaves-default"]
        assert got["data"][0]["object"] == "model"
        one = await world.chat(method="GET", path="/v1/models/eaves-default", raw=b"")
        assert body_of(one)["id"] == "eaves-default"
        missing = await world.chat(method="GET", path="/v1/models/gpt-9", raw=b"")
        assert missing.status == 404 and body_of(missing)["error"]["code"] == "model_not_found"
        assert (await world.chat(method="GET", path="/v1/models", raw=b"", key="eav_wrong")).status == 401
        assert (await world.chat(method="POST", path="/v1/models", raw=b"")).status == 405


    async def test_the_origin_lists_models_only_for_the_edge(self) -> None:
        """The origin's /v1/models, like its chat route, refuses a request the edge did not sign."""
        import httpx

        from origin.app import build_app

        world = await make_world()
        transport = httpx.ASGITransport(app=build_app(world.origin))
        async with httpx.AsyncClient(transport=transport, base_url="http://origin.test") as origin:
            response = await origin.get("/v1/models")
        assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_signature"

    async def test_a_list_seen_before_stands_in_while_the_origin_is_down(self) -> None:
        """The model list is asked of the origin once per TTL; when the origin fails, the last list is served."""
        from edge import errors
        from edge.models import ModelCatalog
        from edge.ports import OriginResponse

        now = [0.0]
        catalog = ModelCatalog(lambda: now[0], ttl_s=60)
        calls = []

        async def up() -> OriginResponse:
            calls.append(1)
            return OriginResponse(200, {}, b'{"object":"list","data":[{"id":"a","object":"model"}]}')

        async def down() -> OriginResponse:
            raise errors.UpstreamError("down", code="origin_unreachable")

        assert body_of(await catalog.serve("/v1/models", up))["data"][0]["id"] == "a"
        await catalog.serve("/v1/models/a", up)
        assert len(calls) == 1  # kept for the TTL
        now[0] = 120.0
        assert body_of(await catalog.serve("/v1/models", down))["data"][0]["id"] == "a"
        with pytest.raises(errors.UpstreamError):
            await ModelCatalog(lambda: 0.0).serve("/v1/models", down)


# ---------------------------------------------------------------- stream rewriting, at any chunk split


def _splits(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(len(data), c) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


_COMPLETION = json.dumps({"id": "chatcmpl-abc", "object": "chat.completion", "created": 1, "model": "m",
                          "choices": [{"index": 0, "message": {"role": "assistant", "content": "héllo wörld"},
                                       "finish_reason": "stop"}],
                          "usage": {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}}).encode()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=2000), max_size=12), st.booleans())
def test_usage_shaping_does_not_depend_on_chunk_splits(cuts: list[int], include: bool) -> None:
    """The shaped stream is the same bytes however the source stream was split."""
    source = streaming.replay(_COMPLETION)
    whole = streaming.shape_usage(source, include)
    shaper = streaming.UsageShaper(include)
    pieces = b"".join(shaper.feed(p) for p in _splits(source, cuts)) + shaper.close()
    assert pieces == whole
    assert (b'"choices":[],"usage"' in whole) is include


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=2000), max_size=12))
def test_responses_events_do_not_depend_on_chunk_splits(cuts: list[int]) -> None:
    """The Responses events are the same however the chat stream was split, and carry the whole text."""
    source = streaming.replay(_COMPLETION)
    call = responses.ResponsesCall({"input": "x"})
    whole = responses.EventWriter(call)
    expected = whole.feed(source) + whole.close()
    writer = responses.EventWriter(call)
    got = b"".join(writer.feed(p) for p in _splits(source, cuts)) + writer.close()
    assert got == expected
    assert events(got)[-1][1]["response"]["output"][0]["content"][0]["text"] == "héllo wörld"


# ---------------------------------------------------------------- tools through an OpenAI-compatible origin

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
                                           "parameters": {"type": "object",
                                                          "properties": {"city": {"type": "string"}}}}}]


def tool_upstream(calls: list[dict[str, Any]]) -> Any:
    """An OpenAI-compatible upstream that answers every request with one streamed tool call."""
    import httpx

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(json.loads(request.content))
        base = {"id": "chatcmpl-up", "object": "chat.completion.chunk", "created": 1, "model": "up"}
        first = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
        deltas = [
            {"role": "assistant", "content": None, "tool_calls": [first]},
            {"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]},
            {"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]},
        ]
        body = b"".join(sse.event({**base, "choices": [{"index": 0, "delta": d, "finish_reason": None}]})
                        for d in deltas)
        body += sse.event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
        body += sse.event({**base, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 7}})
        return httpx.Response(200, content=body + sse.DONE, headers={"content-type": sse.MEDIA_TYPE})

    from origin.generators.openai_compat import OpenAICompatGenerator

    return OpenAICompatGenerator("http://upstream.test/v1",
                                 client=httpx.AsyncClient(transport=httpx.MockTransport(handler)))


class TestToolsForwarded:
    def body(self, tools: list[dict[str, Any]] = TOOLS, **extra: Any) -> dict[str, Any]:
        return {"model": "m", "messages": [{"role": "user", "content": "Weather in Paris?"}], "tools": tools,
                "tool_choice": "auto", **extra}

    async def test_tools_reach_the_upstream_unchanged_and_the_call_comes_back(self) -> None:
        """``tools`` and ``tool_choice`` are forwarded as sent; the answer is the upstream's tool call."""
        calls: list[dict[str, Any]] = []
        world = await make_world(simulator=tool_upstream(calls))
        response = await world.chat(body=self.body())
        assert response.status == 200
        assert calls[0]["tools"] == TOOLS and calls[0]["tool_choice"] == "auto"
        choice = body_of(response)["choices"][0]
        assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
        assert choice["message"]["tool_calls"] == [{"id": "call_1", "type": "function", "function": {
            "name": "get_weather", "arguments": '{"city":"Paris"}'}}]

    async def test_tool_calls_stream_live(self) -> None:
        """Streamed, the tool-call deltas reach the client as the origin relays them."""
        world = await make_world(simulator=tool_upstream([]))
        response = await world.chat(body=self.body(stream=True))
        assert response.header("x-edge-route") == "miss"
        chunks = [data for _, data in events(await read(response)) if isinstance(data, dict)]
        arguments = "".join(call["function"].get("arguments", "") for c in chunks for ch in c["choices"]
                            for call in ch["delta"].get("tool_calls", []))
        assert arguments == '{"city":"Paris"}'
        assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"

    def test_a_stored_tool_call_replays_as_a_stream(self) -> None:
        """A stored completion holding a tool call replays with its tool_calls delta and finish_reason."""
        call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
        body = json.dumps({"id": "chatcmpl-t", "object": "chat.completion", "created": 1, "model": "m",
                           "choices": [{"index": 0, "message": {"role": "assistant", "content": None,
                                                               "tool_calls": [call]},
                                        "finish_reason": "tool_calls"}]}).encode()
        chunks = [data for _, data in events(streaming.replay(body)) if isinstance(data, dict)]
        assert [ch["delta"]["tool_calls"] for c in chunks for ch in c["choices"] if "tool_calls" in ch["delta"]] \
            == [[{"index": 0, **call}]]
        assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"

    async def test_a_tool_call_is_never_served_to_a_request_with_other_tools(self) -> None:
        """The same question with different tools is a miss: a stored tool call answers only its own tools."""
        calls: list[dict[str, Any]] = []
        world = await make_world(simulator=tool_upstream(calls))
        await world.chat(body=self.body())
        other = [{"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}]
        response = await world.chat(body=self.body(tools=other))
        assert response.header("x-edge-route") == "miss" and len(calls) == 2


# ---------------------------------------------------------------- any JSON: a chat request or a WireError

_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                 max_size=3), max_leaves=12)
_FIELDS = st.sampled_from(sorted(responses._FORWARDED | responses._HINTS | set(responses._REFUSED)))
_ITEM = st.fixed_dictionaries({}, optional={
    "type": st.sampled_from(["message", "function_call", "function_call_output", "reasoning"]) | _JSON,
    "role": st.sampled_from(["user", "assistant", "system", "developer", "tool"]) | _JSON,
    "content": st.text(max_size=8) | st.lists(st.fixed_dictionaries(
        {"type": st.sampled_from(["input_text", "output_text", "input_image"]) | _JSON}, optional={"text": _JSON}),
        max_size=2) | _JSON,
    "call_id": _JSON | st.text(min_size=1, max_size=4), "name": _JSON | st.text(min_size=1, max_size=4),
    "arguments": _JSON, "output": _JSON})
_REQUEST = st.dictionaries(_FIELDS | st.text(max_size=8), _JSON, max_size=6).flatmap(
    lambda other: st.fixed_dictionaries({"input": st.text(max_size=8) | st.lists(_ITEM, max_size=4) | _JSON})
    .map(lambda base: {**other, **base}))


@settings(max_examples=300, deadline=None)
@given(_REQUEST)
def test_any_request_translates_or_is_refused_naming_a_field(request: dict[str, Any]) -> None:
    """Any JSON object gives a chat request the chat parser accepts, or a WireError: never another exception."""
    from shared import wire

    try:
        chat = responses.to_chat(request)
    except wire.WireError:
        return
    try:
        body = json.dumps(chat, allow_nan=False).encode()
    except ValueError:
        return  # NaN/Infinity: no JSON body carries them (the edge's JSON reader refuses them first, by name)
    try:
        wire.parse_chat_request(body, default_model="m", max_prompt_chars=10_000)
    except wire.WireError as exc:
        assert exc.param  # refused by the chat parser, still naming a field


@settings(max_examples=60, deadline=None)
@given(_REQUEST)
def test_the_edge_answers_any_responses_body_without_a_5xx(request: dict[str, Any]) -> None:
    """Through the whole edge, any Responses body is answered (or streamed) or refused with a JSON 4xx, and a
    refused one writes nothing to the KV."""

    async def check() -> None:
        world = await make_world()
        response = await respond(world, request)
        assert response.status < 500
        if response.status >= 400:
            assert body_of(response)["error"]["message"]
            assert await world.answer_keys() == []
        else:
            await read(response)

    asyncio.run(check())
