"""Generation end to end on real servers: the official openai client through the edge emulator to the
origin (latency simulator), over HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from eaves.commands.up import demo_key
from eaves.stack import Stack, running_stack
from shared import sse
from tests.integration.conftest import edge_args, edge_runtime, served_by

pytestmark = pytest.mark.integration


def health(stack: Stack) -> dict[str, Any]:
    assert stack.origin is not None
    request = urllib.request.Request(stack.origin.url + "/healthz", headers=stack.operator_headers)
    with urllib.request.urlopen(request, timeout=5) as response:
        data: dict[str, Any] = json.loads(response.read())
        return data


def client(stack: Stack, key: str) -> openai.OpenAI:
    assert stack.edge is not None
    return openai.OpenAI(base_url=stack.edge.url + "/v1", api_key=key, max_retries=0, timeout=30)


@pytest.fixture
def sim_stack(tmp_path: Path, request: pytest.FixtureRequest, runtime: str) -> Iterator[tuple[Stack, str]]:
    env = {"EAVES_GENERATOR": "simulator", "EAVES_SIM_TTFT_MS": "100", "EAVES_SIM_TOKENS_PER_S": "400",
           "EAVES_INTENT": "off", "EAVES_HEARTBEAT_S": "0.05", **getattr(request, "param", {})}
    key = demo_key(tmp_path)
    with running_stack(tmp_path, env=env, edge_args=edge_args(runtime)) as stack:
        assert stack.edge is not None and edge_runtime(stack.edge.url) == runtime
        yield stack, key


class TestStreamingThroughTheEdge:
    def test_openai_client_streams_then_the_kv_answers_without_the_origin(self, sim_stack: tuple[Stack, str],
                                                                          runtime: str) -> None:
        """The official client streams a miss; the same question then streams from the KV, origin untouched."""
        stack, key = sim_stack
        api = client(stack, key)
        question = [{"role": "user", "content": "How do I reset my password?"}]
        pieces = [c.choices[0].delta.content or "" for c in
                  api.chat.completions.create(model="eaves-default", messages=question, stream=True)  # type: ignore[arg-type]
                  if c.choices]
        answer = "".join(pieces)
        assert answer.startswith("Simulated answer to: How do I reset my password?") and len(pieces) > 10
        before = health(stack)
        raw = api.chat.completions.with_raw_response.create(model="eaves-default", messages=question,  # type: ignore[arg-type]
                                                            stream=True)
        assert raw.headers["x-edge-route"] == "hit" and raw.headers["x-edge-runtime"] == runtime
        again = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
        assert again == answer
        after = health(stack)
        assert after["requests"] == before["requests"] == 1 and after["generations"] == 1
        plain = api.chat.completions.create(model="eaves-default", messages=question)  # type: ignore[arg-type]
        assert plain.choices[0].message.content == answer
        assert plain.usage is not None and plain.usage.completion_tokens == 32
        assert plain.usage.model_extra["eaves"]["generator"] == "simulator"  # type: ignore[index]

    @pytest.mark.parametrize("sim_stack", [{"EAVES_SIM_TTFT_MS": "1500"}], indirect=True)
    def test_heartbeats_arrive_before_the_first_token(self, sim_stack: tuple[Stack, str], runtime: str) -> None:
        """While the model has not produced a token, the client receives SSE comments, promptly: they arrive in
        reads of their own, before the read that brings the first token (not flushed together with it)."""
        stack, key = sim_stack
        assert stack.edge is not None
        body = {"model": "eaves-default", "messages": [{"role": "user", "content": "heartbeat?"}], "stream": True}
        reads: list[bytes] = []
        with httpx.stream("POST", stack.edge.url + "/v1/chat/completions", json=body, timeout=30,
                          headers={"authorization": f"Bearer {key}"}) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            served_by(response, runtime)  # type: ignore[arg-type]
            reads = list(response.iter_raw())
        data = b"".join(reads)
        assert data.count(sse.HEARTBEAT) >= 1
        assert data.index(sse.HEARTBEAT) < data.index(b'"content":"Simulated')
        assert data.endswith(sse.DONE)
        first_heartbeat = next(i for i, chunk in enumerate(reads) if sse.HEARTBEAT in chunk)
        first_token = next(i for i, chunk in enumerate(reads) if b'"content":"Simulated' in chunk)
        assert first_heartbeat < first_token  # sent while the model was still silent, not with the answer

    @pytest.mark.parametrize("sim_stack", [{"EAVES_SIM_FAIL_AFTER_TOKENS": "5"}], indirect=True)
    def test_a_broken_stream_raises_in_the_client_and_is_not_cached(self, sim_stack: tuple[Stack, str]) -> None:
        """A generation that breaks mid-stream surfaces as an APIError in the openai client; nothing is stored."""
        stack, key = sim_stack
        api = client(stack, key)
        received = []
        with pytest.raises(openai.APIError, match="failed mid-answer"):
            for chunk in api.chat.completions.create(model="eaves-default", stream=True,
                                                     messages=[{"role": "user", "content": "break"}]):
                received.extend(c.delta.content or "" for c in chunk.choices)
        assert "".join(received).startswith("Simulated")
        assert health(stack)["writebacks"] == 0

    # A generation long enough for all 50 to arrive while it runs: the Worker's edge (the pyodide runtime)
    # does not coalesce (a request may not use another's I/O, edge/coalesce.py), so the origin must.
    @pytest.mark.parametrize("sim_stack", [{"EAVES_SIM_TTFT_MS": "3000"}], indirect=True)
    def test_fifty_concurrent_identical_misses_make_one_generation(self, sim_stack: tuple[Stack, str]) -> None:
        """50 identical requests at once through the edge cause exactly one generation at the origin."""
        stack, key = sim_stack
        api = client(stack, key)
        question = [{"role": "user", "content": "fifty at once"}]

        def ask(i: int) -> str:
            if i % 2:
                return "".join(c.choices[0].delta.content or "" for c in api.chat.completions.create(
                    model="eaves-default", messages=question, stream=True) if c.choices)  # type: ignore[arg-type]
            return api.chat.completions.create(model="eaves-default",  # type: ignore[arg-type]
                                               messages=question).choices[0].message.content or ""

        with ThreadPoolExecutor(50) as pool:
            answers = set(pool.map(ask, range(50)))
        assert len(answers) == 1 and answers.pop().startswith("Simulated answer to: fifty at once")
        assert health(stack)["generations"] == 1


class TestJobsOnTheStack:
    def test_job_is_accepted_polled_and_survives_an_edge_restart(self, tmp_path: Path, runtime: str) -> None:
        """202 before the model has answered (the record still says queued), polled to its result, and still
        readable through a freshly started edge."""
        key = demo_key(tmp_path)
        env = {"EAVES_GENERATOR": "simulator", "EAVES_SIM_TTFT_MS": "5000", "EAVES_INTENT": "off"}
        headers = {"authorization": f"Bearer {key}", "prefer": "respond-async"}
        body = {"model": "eaves-default", "messages": [{"role": "user", "content": "write a report"}]}
        with running_stack(tmp_path, env=env, edge_args=edge_args(runtime)) as stack:
            assert stack.edge is not None
            accepted = served_by(httpx.post(stack.edge.url + "/v1/chat/completions", json=body, headers=headers,
                                            timeout=30), runtime)
            assert accepted.status_code == 202 and accepted.json()["status"] == "queued"
            url = stack.edge.url + accepted.json()["url"]
            # Read right after the 202: the model (5 s to its first token) has not answered yet.
            assert httpx.get(url, headers={"authorization": f"Bearer {key}"}, timeout=10).json()["status"] == "queued"
            deadline = time.monotonic() + 60  # only turns a hang into a failure
            while (record := httpx.get(url, headers={"authorization": f"Bearer {key}"}, timeout=10).json()
                   )["status"] == "queued" and time.monotonic() < deadline:
                time.sleep(0.05)
            assert record["status"] == "succeeded"
            assert health(stack)["generations"] == 1
            path = accepted.json()["url"]
        with running_stack(tmp_path, env=env, edge_args=edge_args(runtime)) as stack:
            assert stack.edge is not None
            again = httpx.get(stack.edge.url + path, headers={"authorization": f"Bearer {key}"}, timeout=10)
            assert served_by(again, runtime).status_code == 200 and again.json() == record
