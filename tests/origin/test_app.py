"""The origin service: only signed requests, generation, and write-back of complete answers only."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from edge.memory import MemoryKV
from origin.app import OriginState, build_app
from origin.generators.base import GenerationRequest, Piece
from origin.generators.simulator import SimulatedGenerator
from origin.writeback import KVAnswerWriter
from shared import signing, wire
from shared.kv import KVStorageFull

SECRET = b"origin-secret-0123456789abcdef0123"
BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hello"}]}).encode()


def make(sim: SimulatedGenerator | None = None) -> tuple[httpx.AsyncClient, MemoryKV, SimulatedGenerator]:
    kv = MemoryKV()
    sim = sim or SimulatedGenerator(ttft_s=0.0, tokens_per_s=0.0)
    app = build_app(OriginState(generator=sim, writer=KVAnswerWriter(kv), secret=SECRET))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://o"), kv, sim


def signed_headers(body: bytes = BODY, extra: dict[str, str] | None = None) -> dict[str, str]:
    headers = {"content-type": "application/json", **(extra or {})}
    headers.update(signing.sign(SECRET, "POST", "/v1/chat/completions", body, time.time(), headers))
    return headers


CACHE = {wire.CACHE_KEY_HEADER: "ans/acme/s/abc", wire.CACHE_TTL_HEADER: "600", wire.CACHE_STALE_HEADER: "0",
         wire.CACHE_INTENT_HEADER: "faq", wire.TENANT_HEADER: "acme"}


class TestSignature:
    async def test_unsigned_request_is_refused(self) -> None:
        """A request straight to the origin, without the edge's signature, gets 401 JSON."""
        client, _, sim = make()
        response = await client.post("/v1/chat/completions", content=BODY, headers={"content-type": "application/json"})
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_signature"
        assert sim.generations == 0

    async def test_tampered_cache_key_is_refused(self) -> None:
        """Changing the write-back key after signing is caught."""
        client, kv, _ = make()
        headers = signed_headers(extra=CACHE)
        headers[wire.CACHE_KEY_HEADER] = "ans/other/s/abc"
        response = await client.post("/v1/chat/completions", content=BODY, headers=headers)
        assert response.status_code == 401
        assert await kv.get("ans/other/s/abc") is None


class TestGeneration:
    async def test_signed_request_generates_with_usage(self) -> None:
        """A signed request gets an OpenAI-shaped completion with a usage block."""
        client, _, _ = make()
        response = await client.post("/v1/chat/completions", content=BODY, headers=signed_headers())
        assert response.status_code == 200
        data = response.json()
        assert data["object"] == "chat.completion" and data["choices"][0]["message"]["content"]
        assert data["usage"]["total_tokens"] == data["usage"]["prompt_tokens"] + data["usage"]["completion_tokens"]

    async def test_writes_back_when_asked(self) -> None:
        """With cache headers the finished answer is stored with its freshness metadata."""
        client, kv, _ = make()
        response = await client.post("/v1/chat/completions", content=BODY, headers=signed_headers(extra=CACHE))
        assert response.headers["x-eaves-writeback"] == "written"
        entry = await kv.get("ans/acme/s/abc")
        assert entry is not None and entry.value == response.content
        assert entry.metadata is not None and entry.metadata["i"] == "faq"

    @pytest.mark.parametrize("failure", [KVStorageFull("map full"), OSError("disk gone")])
    async def test_a_failed_write_back_keeps_the_answer_and_says_so(self, failure: Exception,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
        """KV full or a failing write: the caller still gets its completion, the response says
        `x-eaves-writeback: failed`, the origin logs the failure and counts it."""
        kv = MemoryKV()

        async def refuse(*args: object, **kwargs: object) -> None:
            raise failure

        kv.put = refuse  # type: ignore[method-assign]
        state = OriginState(generator=SimulatedGenerator(ttft_s=0.0, tokens_per_s=0.0), writer=KVAnswerWriter(kv),
                            secret=SECRET)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=build_app(state)), base_url="http://o")
        with caplog.at_level(logging.ERROR, logger="eaves"):
            response = await client.post("/v1/chat/completions", content=BODY, headers=signed_headers(extra=CACHE))
        assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"]
        assert response.headers["x-eaves-writeback"] == "failed"
        assert state.totals.writeback_failures == 1 and state.totals.writebacks == 0
        assert any("ans/acme/s/abc" in record.getMessage() for record in caplog.records)

    async def test_no_cache_headers_no_write(self) -> None:
        """Without cache headers nothing is written."""
        client, kv, _ = make()
        await client.post("/v1/chat/completions", content=BODY, headers=signed_headers())
        assert (await kv.list()).keys == []

    async def test_failed_generation_writes_nothing(self) -> None:
        """A generation that fails part-way gives 502 and no KV entry."""
        client, kv, _ = make(SimulatedGenerator(ttft_s=0.0, tokens_per_s=0.0, fail_after_tokens=3))
        response = await client.post("/v1/chat/completions", content=BODY, headers=signed_headers(extra=CACHE))
        assert response.status_code == 502 and response.json()["error"]["code"] == "generation_failed"
        assert await kv.get("ans/acme/s/abc") is None

    async def test_bad_body_is_400(self) -> None:
        """A signed but malformed body is a 400 naming the problem."""
        client, _, _ = make()
        body = b'{"messages": "nope"}'
        response = await client.post("/v1/chat/completions", content=body, headers=signed_headers(body))
        assert response.status_code == 400 and "messages" in response.json()["error"]["message"]


class BlankGenerator(SimulatedGenerator):
    """A model that answers with whitespace only."""

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Piece]:
        self.generations += 1
        yield Piece(" \n", 2)


async def test_an_empty_answer_is_a_failed_generation_and_is_not_written() -> None:
    """A model that produces no text gives a 502, not an empty answer cached for everyone."""
    client, kv, sim = make(BlankGenerator(ttft_s=0.0, tokens_per_s=0.0))
    response = await client.post("/v1/chat/completions", content=BODY, headers=signed_headers(extra=CACHE))
    assert response.status_code == 502 and sim.generations == 1
    assert "no text" in response.json()["error"]["message"]
    assert await kv.get("ans/acme/s/abc") is None
