"""The cost of a cache hit per API shape, in-process (the edge core over the in-memory runtime, no HTTP):

    .venv/bin/python -m tests.edge.hit_cost

Prints the median of 5 rounds of 3000 hits for chat and Responses, plain and streamed. Rate limiting is
left out (it is the same for every shape). Not a test: timings are never asserted.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from typing import Any

from edge.http import EdgeRequest
from edge.ports import RateDecision
from tests.world import make_world

QUESTION = "How do I cook rice?"
SHAPES = {
    "chat": ("/v1/chat/completions", {"messages": [{"role": "user", "content": QUESTION}]}),
    "chat, stream": ("/v1/chat/completions", {"messages": [{"role": "user", "content": QUESTION}], "stream": True}),
    "responses": ("/v1/responses", {"input": QUESTION}),
    "responses, stream": ("/v1/responses", {"input": QUESTION, "stream": True}),
}


class Unlimited:
    async def acquire(self, key: str, limit: int, window_s: int) -> RateDecision:
        return RateDecision(True, limit, limit, 0.0)


async def main(rounds: int = 5, hits: int = 3000) -> dict[str, float]:
    world = await make_world()
    world.edge.limiter = Unlimited()
    headers = {"content-type": "application/json", "authorization": f"Bearer {world.keys['acme']}"}
    results: dict[str, float] = {}
    for name, (path, payload) in SHAPES.items():
        body = json.dumps({"model": "m", **payload}).encode()
        request = EdgeRequest("POST", path, headers, body)
        response: Any = await world.edge.handle(request)  # the miss that stores the answer
        for _ in range(hits):  # warm-up, not counted
            await world.edge.handle(request)
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            for _ in range(hits):
                response = await world.edge.handle(request)
            times.append((time.perf_counter() - started) / hits * 1e6)
        assert response.header("x-edge-route") == "hit"
        results[name] = statistics.median(times)
    return results


if __name__ == "__main__":
    for shape, micros in asyncio.run(main()).items():
        print(f"{shape:18s} {micros:6.1f} µs per hit")
