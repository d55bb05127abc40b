"""The embedded model end to end: the official openai client streams an answer through the edge from
Gemma 3 270M on the CPU, then the same question streams again from the KV without the origin."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import openai
import pytest

from eaves.commands.up import demo_key
from eaves.stack import running_stack
from origin.generators.llama import llama_available
from tests.tiers import require_tool

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("needs_model")]


@pytest.fixture
def needs_model() -> None:
    require_tool("llm", llama_available(), "the embedded model (llama-cpp-python and the Gemma GGUF)")


def origin_health(url: str, headers: dict[str, str] | None = None) -> dict[str, object]:
    with urllib.request.urlopen(urllib.request.Request(url + "/healthz", headers=headers or {}),
                                timeout=5) as response:
        data: dict[str, object] = json.loads(response.read())
        return data


def test_embedded_model_streams_through_the_edge_then_from_the_kv(tmp_path: Path,
                                                                   request: pytest.FixtureRequest) -> None:
    """A real generation streams token by token; the repeat is a KV hit and the origin is not called."""
    key = demo_key(tmp_path)
    questions = ["What is the capital of France?"]
    if request.config.getoption("--slow"):
        questions += ["Explain what a cache is.", "How do I reset my password?"]
    with running_stack(tmp_path, env={"EAVES_GENERATOR": "llama", "EAVES_INTENT": "off"}) as stack:
        assert stack.edge is not None and stack.origin is not None
        assert origin_health(stack.origin.url, stack.operator_headers)["generator"] == "llama"
        api = openai.OpenAI(base_url=stack.edge.url + "/v1", api_key=key, max_retries=0, timeout=180)
        for question in questions:
            messages = [{"role": "user", "content": question}]
            first = api.chat.completions.with_raw_response.create(model="eaves-default", messages=messages,  # type: ignore[arg-type]
                                                                  stream=True, max_tokens=96, temperature=0,
                                                                  stream_options={"include_usage": True})
            assert first.headers["x-edge-route"] == "miss"
            chunks = [c for c in first.parse()]
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            assert text.strip(), "the model produced no text"
            # As OpenAI sends it: the usage alone in a last chunk with no choices; the answer ended by itself
            # (finish_reason "stop"), so it is complete and stored.
            assert chunks[-1].choices == [] and chunks[-1].usage is not None
            assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
            usage = chunks[-1].usage
            assert 0 < usage.completion_tokens < 96 and usage.prompt_tokens > 5
            assert usage.model_extra["eaves"]["generator"] == "llama"  # type: ignore[index]
            before = origin_health(stack.origin.url, stack.operator_headers)
            again = api.chat.completions.with_raw_response.create(model="eaves-default", messages=messages,  # type: ignore[arg-type]
                                                                  stream=True, max_tokens=96, temperature=0,
                                                                  stream_options={"include_usage": True})
            assert again.headers["x-edge-route"] == "hit"
            assert "".join(c.choices[0].delta.content or "" for c in again.parse() if c.choices) == text
            assert origin_health(stack.origin.url, stack.operator_headers)["requests"] == before["requests"]
