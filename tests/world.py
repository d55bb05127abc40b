"""An in-process eaves: the edge core, the real origin app over httpx's ASGI transport, one in-memory KV.

No sockets and a manual clock, so expiry, rate limits and tokens are deterministic.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from edge.app import EdgeApp
from edge.auth import KEY_PREFIX, api_key_hash, api_key_record
from edge.emulator.adapters import HttpxOriginClient
from edge.http import EdgeRequest, EdgeResponse
from edge.memory import ManualClock, MemoryKV, MemoryRateLimiter, TaskBackground
from edge.settings import EdgeSettings
from origin.app import OriginState, build_app
from origin.generators.simulator import SimulatedGenerator
from origin.writeback import KVAnswerWriter
from shared.intent.routing import CacheEverything, IntentClassifier, NoClassifier, RoutePolicy

SECRET = b"test-signing-secret-0123456789abcdef"


@dataclass
class World:
    edge: EdgeApp
    kv: MemoryKV
    clock: ManualClock
    simulator: SimulatedGenerator
    origin: OriginState
    keys: dict[str, str] = field(default_factory=dict)

    async def add_key(self, name: str, tenant: str, tier: str = "pro") -> str:
        key = f"eav_test_{name}"
        await self.kv.put(KEY_PREFIX + api_key_hash(key), api_key_record(tenant, tier, name, self.clock.now()))
        self.keys[name] = key
        return key

    async def chat(self, prompt: str = "How do I reset my password?", *, key: str = "acme",
                   body: Any = None, headers: dict[str, str] | None = None, raw: bytes | None = None,
                   method: str = "POST", path: str = "/v1/chat/completions") -> EdgeResponse:
        payload = body if body is not None else {"model": "m", "messages": [{"role": "user", "content": prompt}]}
        sent = {"content-type": "application/json", "authorization": f"Bearer {self.keys.get(key, key)}"}
        sent.update(headers or {})
        data = raw if raw is not None else json.dumps(payload).encode()
        return await self.edge.handle(EdgeRequest(method, path, sent, data))

    async def answer_keys(self) -> list[str]:
        return [k.name for k in (await self.kv.list(prefix="ans/")).keys]


async def make_world(*, classifier: IntentClassifier | None = None, policy: RoutePolicy | None = None,
                     simulator: SimulatedGenerator | None = None, clock: ManualClock | None = None,
                     **settings: Any) -> World:
    clock = clock or ManualClock(start=time.time())
    kv = MemoryKV(clock)
    sim = simulator or SimulatedGenerator(ttft_s=0.0, tokens_per_s=0.0)
    origin_state = OriginState(generator=sim, writer=KVAnswerWriter(kv), secret=SECRET, clock=clock.now)
    transport = httpx.ASGITransport(app=build_app(origin_state))
    origin = HttpxOriginClient("http://origin.test", transport=transport)
    edge = EdgeApp(EdgeSettings(origin_secret=SECRET, **settings), kv, origin, MemoryRateLimiter(clock), clock,
                   TaskBackground(), classifier or NoClassifier(), policy or CacheEverything())
    world = World(edge, kv, clock, sim, origin_state)
    await world.add_key("acme", "acme")
    await world.add_key("beta", "beta")
    return world


def body_of(response: EdgeResponse) -> Any:
    assert isinstance(response.body, bytes)
    return json.loads(response.body)
