"""The origin's write-back rules: only a complete answer ("stop") is stored, only where the asker's own
tenant (and end user) reads it; the end user reaches an OpenAI-compatible upstream as ``user``."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from edge.memory import MemoryKV
from origin.app import OriginState, build_app
from origin.flights import request_key
from origin.generators.base import GenerationRequest, Piece
from origin.generators.openai_compat import OpenAICompatGenerator
from origin.generators.simulator import SimulatedGenerator
from origin.writeback import KVAnswerWriter
from shared import signing, wire
from shared.jobs import JOB_ID_HEADER, JOB_KEY_HEADER

SECRET = b"origin-secret-0123456789abcdef0123"
BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hello"}]}).encode()
SHARED = "ans/acme/s/" + "d" * 64


class Finishing(SimulatedGenerator):
    """Answers "partial answer" and stops for ``reason``."""

    reason: str = "stop"

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Piece]:
        self.generations += 1
        yield Piece("partial answer", 2, finish_reason=self.reason)


def make(generator: SimulatedGenerator) -> tuple[httpx.AsyncClient, MemoryKV]:
    kv = MemoryKV()
    app = build_app(OriginState(generator=generator, writer=KVAnswerWriter(kv), secret=SECRET))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://o"), kv


def signed(extra: dict[str, str], body: bytes = BODY) -> dict[str, str]:
    headers = {"content-type": "application/json", **extra}
    headers.update(signing.sign(SECRET, "POST", "/v1/chat/completions", body, time.time(), headers))
    return headers


def cache(key: str = SHARED, tenant: str = "acme", **more: str) -> dict[str, str]:
    return {wire.CACHE_KEY_HEADER: key, wire.CACHE_TTL_HEADER: "600", wire.TENANT_HEADER: tenant, **more}


class TestFinishReason:
    @pytest.mark.parametrize("reason", ["length", "content_filter", "tool_calls"])
    async def test_incomplete_answers_are_returned_not_stored(self, reason: str) -> None:
        """The asker gets the answer with its real finish_reason; the KV gets nothing."""
        generator = Finishing(ttft_s=0.0)
        generator.reason = reason
        client, kv = make(generator)
        response = await client.post("/v1/chat/completions", content=BODY, headers=signed(cache()))
        assert response.json()["choices"][0]["finish_reason"] == reason
        assert response.headers["x-eaves-writeback"] == f"refused:{reason}"
        assert (await kv.list()).keys == []

    async def test_a_truncated_refresh_leaves_the_complete_entry(self) -> None:
        """A second generation for the same key that ends with length does not replace the first."""
        generator = Finishing(ttft_s=0.0)
        client, kv = make(generator)
        first = await client.post("/v1/chat/completions", content=BODY, headers=signed(cache()))
        generator.reason = "length"
        await client.post("/v1/chat/completions", content=BODY, headers=signed(cache()))
        entry = await kv.get(SHARED)
        assert entry is not None and entry.value == first.content

    async def test_streamed_finish_reason_is_the_real_one(self) -> None:
        """The last SSE chunk carries the model's finish_reason, not a hard-coded stop."""
        generator = Finishing(ttft_s=0.0)
        generator.reason = "length"
        client, kv = make(generator)
        body = json.dumps({"messages": [{"role": "user", "content": "hello"}], "stream": True}).encode()
        response = await client.post("/v1/chat/completions", content=body, headers=signed(cache(), body))
        assert '"finish_reason":"length"' in response.text and (await kv.list()).keys == []

    async def test_simulator_reports_length_when_max_tokens_cuts_it(self) -> None:
        """The simulator behaves like a model: cut by max_tokens, it says length."""
        sim = SimulatedGenerator(ttft_s=0.0, tokens_per_s=0.0, answer_tokens=32)
        reasons = [p.finish_reason async for p in sim.stream(GenerationRequest("m", [], "q", max_tokens=4))]
        assert reasons[-1] == "length" and set(reasons[:-1]) == {None}
        reasons = [p.finish_reason async for p in sim.stream(GenerationRequest("m", [], "q", max_tokens=256))]
        assert reasons[-1] == "stop"


class TestKeyOwner:
    @pytest.mark.parametrize(("key", "extra"), [
        ("ans/beta/s/" + "d" * 64, {}),  # another tenant's namespace
        ("ans/acme/s/", {}),  # the bare prefix
        ("ans/acme/u/" + "0" * 32 + "/" + "d" * 64, {wire.USER_HEADER: "alice"}),  # someone else's user key
        ("ans/acme/u/" + "0" * 32 + "/" + "d" * 64, {}),  # a user key without an end user
        ("key/" + "0" * 64, {}),  # an API key record
    ])
    async def test_write_outside_the_askers_namespace_is_refused(self, key: str, extra: dict[str, str]) -> None:
        """Even a signed instruction only writes where the asking tenant (and end user) reads: 400, nothing
        generated, nothing written."""
        generator = SimulatedGenerator(ttft_s=0.0, tokens_per_s=0.0)
        client, kv = make(generator)
        response = await client.post("/v1/chat/completions", content=BODY, headers=signed(cache(key, **extra)))
        assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_cache_key"
        assert generator.generations == 0 and (await kv.list()).keys == []

    async def test_own_user_key_is_written(self) -> None:
        """A user key built for the end user in x-eaves-user is accepted."""
        from shared.cache_keys import user_key

        key = user_key("acme", "alice", "d" * 64)
        client, kv = make(SimulatedGenerator(ttft_s=0.0, tokens_per_s=0.0))
        response = await client.post("/v1/chat/completions", content=BODY,
                                     headers=signed(cache(key, **{wire.USER_HEADER: "alice"})))
        assert response.headers["x-eaves-writeback"] == "written" and await kv.get(key) is not None

    async def test_job_record_of_another_tenant_is_refused(self) -> None:
        """A job record is only written under the asking tenant's job prefix."""
        job_id = "job_" + "a" * 32
        client, kv = make(SimulatedGenerator(ttft_s=0.0, tokens_per_s=0.0))
        headers = {wire.TENANT_HEADER: "acme", JOB_ID_HEADER: job_id, JOB_KEY_HEADER: f"job/beta/{job_id}"}
        response = await client.post("/v1/chat/completions", content=BODY, headers=signed(headers))
        assert response.status_code == 400 and (await kv.list()).keys == []


class TestCoalescingKey:
    def test_uncached_requests_coalesce_only_for_the_same_asker_and_request(self) -> None:
        """Two end users, or any field beyond delivery, never share an uncached generation."""
        payload: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "q"}]}
        base = request_key("acme", "alice", payload)
        assert request_key("acme", "bob", payload) != base
        assert request_key("acme", "alice", {**payload, "top_p": 0.1}) != base
        assert request_key("acme", "alice", {**payload, "tools": []}) != base
        assert request_key("acme", "alice", {**payload, "stream": True}) == base


class TestOpenAICompatUser:
    async def test_user_and_finish_reason_pass_through(self) -> None:
        """The end user goes upstream as OpenAI's ``user``; the upstream's finish_reason comes back."""
        sent: list[dict[str, Any]] = []

        def handler(request: httpx.Request) -> httpx.Response:
            sent.append(json.loads(request.content))
            chunks = [{"choices": [{"delta": {"content": "Hi"}, "finish_reason": None}]},
                      {"choices": [{"delta": {}, "finish_reason": "length"}]}]
            body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
            return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})

        client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        generator = OpenAICompatGenerator("http://upstream.test/v1", client=client)
        request = GenerationRequest("m", [{"role": "user", "content": "q"}], "q", user="alice")
        pieces = [p async for p in generator.stream(request)]
        await generator.aclose()
        assert sent[0]["user"] == "alice"
        assert "".join(p.text for p in pieces) == "Hi" and pieces[-1].finish_reason == "length"

    def test_sampling_parameters_reach_the_upstream(self) -> None:
        """Keyed parameters that change sampling are honoured upstream, not silently dropped."""
        generator = OpenAICompatGenerator("http://upstream.test/v1", client=httpx.AsyncClient())
        sampling = {"top_p": 0.5, "seed": 3, "response_format": {"type": "json_object"}}
        payload = generator._payload(GenerationRequest("m", [], "q", extra={"sampling": sampling}))
        assert {k: payload[k] for k in sampling} == sampling and payload["stream"] is True

    def test_no_user_no_field(self) -> None:
        """Without an end user nothing is invented."""
        generator = OpenAICompatGenerator("http://upstream.test/v1")
        assert "user" not in generator._payload(GenerationRequest("m", [], "q"))
