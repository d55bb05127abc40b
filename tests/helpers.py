"""In-process edge → origin wiring for unit tests: one shared in-memory KV, the origin's real ASGI app
called without sockets (streaming chunk by chunk), and an API key for a demo tenant."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from edge.app import EdgeApp
from edge.auth import KEY_PREFIX, api_key_hash, api_key_record, new_api_key
from edge.http import EdgeRequest, EdgeResponse
from edge.memory import MemoryKV, MemoryRateLimiter, SystemClock, TaskBackground
from edge.ports import OriginRequest, OriginResponse
from edge.settings import EdgeSettings, Tier
from origin.app import OriginState, build_app
from origin.generators.base import Generator
from origin.generators.simulator import SimulatedGenerator
from origin.writeback import KVAnswerWriter

SECRET = b"test-secret"


class AsgiOrigin:
    """The OriginClient port over an ASGI app in this process; streamed bodies arrive as sent."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.calls = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def send(self, request: OriginRequest) -> OriginResponse:
        self.calls += 1
        loop = asyncio.get_running_loop()
        started: asyncio.Future[tuple[int, dict[str, str]]] = loop.create_future()
        chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
        body_sent = False

        async def receive() -> dict[str, Any]:
            nonlocal body_sent
            if not body_sent:
                body_sent = True
                return {"type": "http.request", "body": request.body, "more_body": False}
            await asyncio.Event().wait()  # never disconnects
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = {k.decode(): v.decode() for k, v in message["headers"]}
                started.set_result((message["status"], headers))
            elif message["type"] == "http.response.body":
                if message.get("body"):
                    chunks.put_nowait(message["body"])
                if not message.get("more_body"):
                    chunks.put_nowait(None)

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": request.method,
                 "scheme": "http", "path": request.path, "raw_path": request.path.encode(), "query_string": b"",
                 "headers": [(k.encode(), v.encode()) for k, v in request.headers.items()],
                 "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80), "root_path": ""}
        task = asyncio.ensure_future(self.app(scope, receive, send))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        status, headers = await started

        async def body() -> AsyncIterator[bytes]:
            while (chunk := await chunks.get()) is not None:
                yield chunk

        if not request.stream:
            return OriginResponse(status, headers, b"".join([c async for c in body()]))
        return OriginResponse(status, headers, body())


@dataclass
class Rig:
    edge: EdgeApp
    origin_state: OriginState
    origin: AsgiOrigin
    kv: MemoryKV
    api_key: str
    generator: Any
    background: TaskBackground = field(default_factory=TaskBackground)

    async def chat(self, content: str, *, stream: bool = False, headers: dict[str, str] | None = None,
                   **extra: Any) -> EdgeResponse:
        body = json.dumps({"model": "eaves-default", "messages": [{"role": "user", "content": content}],
                           "stream": stream, **extra}).encode()
        return await self.edge.handle(EdgeRequest("POST", "/v1/chat/completions", {
            "authorization": f"Bearer {self.api_key}", "content-type": "application/json", **(headers or {})},
            body))

    async def get(self, path: str) -> EdgeResponse:
        return await self.edge.handle(EdgeRequest("GET", path, {"authorization": f"Bearer {self.api_key}"}))


async def read_body(response: EdgeResponse) -> bytes:
    if isinstance(response.body, bytes | bytearray):
        return bytes(response.body)
    return b"".join([chunk async for chunk in response.body])


async def make_rig(generator: Generator | None = None, *, heartbeat_s: float = 2.0, policy: Any = None,
                   tenant: str = "acme") -> Rig:
    kv = MemoryKV()
    key = new_api_key()
    await kv.put(KEY_PREFIX + api_key_hash(key), api_key_record(tenant, "pro", "test", time.time()))
    generator = generator or SimulatedGenerator(ttft_s=0.01, tokens_per_s=2000)
    state = OriginState(generator=generator, writer=KVAnswerWriter(kv), secret=SECRET)
    origin = AsgiOrigin(build_app(state))
    settings = EdgeSettings(origin_secret=SECRET, heartbeat_s=heartbeat_s,
                            tiers={"pro": Tier(100_000, 60)})
    kwargs: dict[str, Any] = {} if policy is None else {"policy": policy}
    edge = EdgeApp(settings=settings, kv=kv, origin=origin, limiter=MemoryRateLimiter(), clock=SystemClock(),
                   background=TaskBackground(), **kwargs)
    return Rig(edge, state, origin, kv, key, generator)


class VirtualSleep:
    """Stands in for ``asyncio`` inside one module so its ``sleep`` takes no wall time: each wait is recorded
    (what the module decided to wait, the behaviour under test) and only yields to the loop once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    async def sleep(self, seconds: float, result: Any = None) -> Any:
        self.waits.append(seconds)
        await _real_sleep(0)
        return result


_real_sleep = asyncio.sleep


def sse_events(raw: bytes) -> list[str]:
    """The data fields of an SSE byte stream, comments dropped."""
    out = []
    for block in raw.decode().split("\n\n"):
        for line in block.split("\n"):
            if line.startswith("data: "):
                out.append(line[6:])
    return out


def sse_text(raw: bytes) -> str:
    text = []
    for data in sse_events(raw):
        if data == "[DONE]":
            continue
        with contextlib.suppress(ValueError, KeyError, IndexError, TypeError):
            text.append(json.loads(data)["choices"][0]["delta"].get("content") or "")
    return "".join(text)
