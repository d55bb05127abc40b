"""What the official openai SDK makes of the edge's streams, in-process: failures and finish reasons are
parsed by the client as OpenAI's own would be (the integration tier runs the happy paths over HTTP)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import openai
import pytest

from edge.http import EdgeRequest
from origin.generators.simulator import SimulatedGenerator
from tests.edge.test_responses import tool_upstream
from tests.world import World, make_world

Send = Callable[[dict[str, Any]], Awaitable[None]]


def asgi(world: World) -> Any:
    """The edge core as a bare ASGI app (the emulator's front without LMDB and settings)."""

    async def app(scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]], send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        response = await world.edge.handle(EdgeRequest(scope["method"], scope["path"], headers, body))
        out = [(k.encode(), v.encode()) for k, v in response.headers]
        out.append((b"content-type", response.content_type.encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": out})
        if isinstance(response.body, bytes | bytearray):
            await send({"type": "http.response.body", "body": bytes(response.body)})
            return
        async for part in response.body:
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return app


async def client(generator: Any = None, **simulator: Any) -> openai.AsyncOpenAI:
    world = await make_world(simulator=generator or SimulatedGenerator(ttft_s=0.0, tokens_per_s=0.0, **simulator))
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi(world)))
    return openai.AsyncOpenAI(base_url="http://edge.test/v1", api_key=world.keys["acme"], http_client=http,
                              max_retries=0)


class TestFailuresMidStream:
    async def test_chat_stream_failure_raises_api_error(self) -> None:
        """A generation that fails mid-answer ends the chat stream with an error the SDK raises as APIError."""
        sdk = await client(fail_after_tokens=3)
        stream = await sdk.chat.completions.create(model="m", stream=True,
                                                   messages=[{"role": "user", "content": "break please"}])
        with pytest.raises(openai.APIError, match="the model failed mid-answer"):
            async for _ in stream:
                pass

    async def test_responses_stream_failure_is_an_error_event_then_failed(self) -> None:
        """The same failure on /v1/responses arrives as the typed ``error`` and ``response.failed`` events."""
        sdk = await client(fail_after_tokens=3)
        stream = await sdk.responses.create(model="m", input="break please", stream=True)
        kinds = [event.type async for event in stream]
        assert kinds[-2:] == ["error", "response.failed"] and "response.completed" not in kinds


class TestFinishReasons:
    async def test_length_reaches_the_client_streamed_and_not(self) -> None:
        """``max_tokens`` below the answer's length reads as ``length`` in both shapes, and ``incomplete`` on
        /v1/responses."""
        sdk = await client(answer_tokens=32)
        messages: Any = [{"role": "user", "content": "a long answer"}]
        plain = await sdk.chat.completions.create(model="m", messages=messages, max_tokens=2)
        assert plain.choices[0].finish_reason == "length"
        chunks = [c async for c in await sdk.chat.completions.create(model="m", messages=messages, max_tokens=2,
                                                                       stream=True)]
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
        response = await sdk.responses.create(model="m", input="a long answer", max_output_tokens=2)
        assert response.status == "incomplete" and response.incomplete_details is not None
        assert response.incomplete_details.reason == "max_output_tokens"


WEATHER = {"type": "function", "name": "get_weather", "parameters": {"type": "object",
                                                                    "properties": {"city": {"type": "string"}}}}


class TestResponsesTools:
    async def test_function_tools_give_function_call_items(self) -> None:
        """With an origin that calls tools, ``responses.create(tools=...)`` returns the call as a function_call
        item, plain and streamed, and the upstream got the tools in chat's shape."""
        calls: list[dict[str, Any]] = []
        sdk = await client(tool_upstream(calls))
        response = await sdk.responses.create(model="m", input="Weather in Paris?", tools=[WEATHER])  # type: ignore[list-item]
        item = response.output[0]
        assert item.type == "function_call" and item.name == "get_weather"
        assert item.arguments == '{"city":"Paris"}' and item.call_id == "call_1"
        assert calls[0]["tools"] == [{"type": "function", "function": {k: v for k, v in WEATHER.items()
                                                                       if k != "type"}}]
        stream = await sdk.responses.create(model="m", input="Weather in Rome?", tools=[WEATHER], stream=True)  # type: ignore[list-item]
        deltas, final = [], None
        async for event in stream:
            if event.type == "response.function_call_arguments.delta":
                deltas.append(event.delta)
            if event.type == "response.completed":
                final = event.response
        assert "".join(deltas) == '{"city":"Paris"}'
        assert final is not None and final.output[0].type == "function_call"

    async def test_the_simulator_refuses_function_tools(self) -> None:
        """A generator that cannot call tools refuses them on /v1/responses too, naming ``tools``."""
        sdk = await client()
        with pytest.raises(openai.BadRequestError) as caught:
            await sdk.responses.create(model="m", input="Weather in Paris?", tools=[WEATHER])  # type: ignore[list-item]
        assert "tools" in str(caught.value) and "simulator" in str(caught.value)
