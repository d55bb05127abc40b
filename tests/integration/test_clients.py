"""The clients an AI website uses, unmodified, against the real stack on both edge runtimes.

openai (Python SDK): chat and responses, streamed and not, and the model list; the Vercel AI SDK
(``ai`` + ``@ai-sdk/openai``, whose default provider call is the Responses API): generateText and
streamText; the LiteLLM SDK: completion, streamed and not. Each asks twice: a miss, then a hit that
leaves the origin idle.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from eaves.stack import Stack
from tests.integration.conftest import create_key
from tests.node_tools import NODE_MODULES, REPO, node, require

pytestmark = pytest.mark.integration

AI_SDK_SCRIPT = REPO / "tests" / "clients" / "ai_sdk.mjs"


def generations(stack: Stack) -> int:
    assert stack.origin
    # The origin's totals are the operator's: read with the metrics token.
    return int(httpx.get(stack.origin.url + "/healthz", headers=stack.operator_headers).json()["generations"])


@pytest.fixture(scope="module")
def key(stack: Stack, stack_dir: Path) -> str:
    return create_key(stack_dir, "clients")


@pytest.fixture(scope="module")
def client(stack: Stack, key: str) -> openai.OpenAI:
    assert stack.edge
    return openai.OpenAI(base_url=stack.edge.url + "/v1", api_key=key, max_retries=0)


class TestOpenAIPython:
    def test_responses_miss_then_hit(self, stack: Stack, client: openai.OpenAI) -> None:
        """``client.responses.create`` gets output_text, then the same text from the KV."""
        first = client.responses.with_raw_response.create(model="eaves-default", input="What is a Response?",
                                                          instructions="Answer in one line.")
        assert first.headers["x-edge-route"] == "miss"
        text = first.parse().output_text
        assert text.startswith("Simulated answer to: What is a Response?")
        before = generations(stack)
        second = client.responses.with_raw_response.create(model="eaves-default", input="What is a Response?",
                                                           instructions="Answer in one line.")
        assert second.headers["x-edge-route"] == "hit" and second.parse().output_text == text
        assert generations(stack) == before

    def test_responses_stream_miss_then_hit(self, stack: Stack, client: openai.OpenAI) -> None:
        """A streamed Response arrives as typed events whose deltas make the final text, live and replayed."""
        texts = []
        for _ in range(2):
            stream = client.responses.create(model="eaves-default", input="Stream a Response", stream=True)
            kinds, deltas, final = [], [], None
            for event in stream:
                kinds.append(event.type)
                if event.type == "response.output_text.delta":
                    deltas.append(event.delta)
                if event.type == "response.completed":
                    final = event.response
            assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
            assert final is not None and final.output_text == "".join(deltas)
            assert final.usage is not None and final.usage.output_tokens > 0
            texts.append(final.output_text)
        assert texts[0] == texts[1]

    def test_chat_stream_with_include_usage(self, client: openai.OpenAI) -> None:
        """``include_usage`` ends the chat stream with a usage chunk without choices, live and replayed."""
        for _ in range(2):
            chunks = list(client.chat.completions.create(
                model="eaves-default", messages=[{"role": "user", "content": "Count my tokens"}], stream=True,
                stream_options={"include_usage": True}))
            assert chunks[-1].choices == [] and chunks[-1].usage is not None
            assert chunks[-1].usage.completion_tokens > 0
            assert all(c.usage is None for c in chunks[:-1])
            assert chunks[-2].choices[0].finish_reason == "stop"

    def test_chat_miss_then_hit(self, stack: Stack, client: openai.OpenAI) -> None:
        """Chat completions, non-streamed: a miss, then the same answer with the origin idle."""
        messages: Any = [{"role": "user", "content": "Chat with me"}]
        first = client.chat.completions.create(model="eaves-default", messages=messages)
        before = generations(stack)
        second = client.chat.completions.create(model="eaves-default", messages=messages)
        assert second.choices[0].message.content == first.choices[0].message.content
        assert generations(stack) == before

    def test_models(self, client: openai.OpenAI) -> None:
        """``client.models.list()`` and ``retrieve`` see the origin's model."""
        assert "eaves-default" in [m.id for m in client.models.list()]
        assert client.models.retrieve("eaves-default").id == "eaves-default"

    def test_refused_field_is_a_bad_request(self, client: openai.OpenAI) -> None:
        """A field the origin cannot serve raises BadRequestError naming it."""
        with pytest.raises(openai.BadRequestError) as caught:
            client.responses.create(model="eaves-default", input="hi", previous_response_id="resp_123")
        assert "previous_response_id" in str(caught.value)


def ai_sdk(stack: Stack, key: str, mode: str, prompt: str) -> dict[str, Any]:
    assert stack.edge
    result = subprocess.run([node(), str(AI_SDK_SCRIPT), stack.edge.url + "/v1", key, mode, prompt],
                            capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    return dict(json.loads(result.stdout.splitlines()[-1]))


class TestVercelAISDK:
    @pytest.mark.parametrize("mode", ["generate", "stream"])
    def test_default_provider_call_miss_then_hit(self, stack: Stack, key: str, mode: str) -> None:
        """``createOpenAI({baseURL})('eaves-default')`` (the Responses API) answers, then answers from the KV."""
        require(NODE_MODULES / "ai", NODE_MODULES / "@ai-sdk" / "openai")
        prompt = f"What does the AI SDK {mode} do?"
        first = ai_sdk(stack, key, mode, prompt)
        assert first["text"].startswith(f"Simulated answer to: {prompt}"), first
        assert first["finishReason"] == "stop" and first.get("error") is None
        assert first["usage"]["outputTokens"] > 0
        before = generations(stack)
        second = ai_sdk(stack, key, mode, prompt)
        assert second["text"] == first["text"]
        assert generations(stack) == before


@pytest.fixture(scope="module")
def litellm() -> Any:
    # Its own copy of the model price list, not the one it would fetch at import.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    return litellm


class TestLiteLLM:
    @pytest.mark.parametrize("stream", [False, True])
    # LiteLLM's own types trip a pydantic warning while it reads any stream (not about eaves' bytes).
    @pytest.mark.filterwarnings("ignore:Item .* is using the .ReadOnly. qualifier")
    def test_completion_miss_then_hit(self, stack: Stack, key: str, litellm: Any, stream: bool) -> None:
        """``litellm.completion(model="openai/…", api_base=…)``, streamed and not: a miss, then a hit."""
        assert stack.edge
        messages = [{"role": "user", "content": f"LiteLLM asks, stream={stream}"}]
        texts = []
        for _ in range(2):
            before = generations(stack)
            response = litellm.completion(model="openai/eaves-default", api_base=stack.edge.url + "/v1",
                                          api_key=key, messages=messages, stream=stream)
            if stream:
                texts.append("".join(chunk.choices[0].delta.content or "" for chunk in response if chunk.choices))
            else:
                texts.append(response.choices[0].message.content)
        assert texts[0].startswith("Simulated answer to: LiteLLM asks") and texts[1] == texts[0]
        assert generations(stack) == before


def test_litellm_imports_without_network() -> None:
    """LiteLLM imports with its bundled price list, in a fresh interpreter that cannot reach any network."""
    code = "import socket\nsocket.socket.connect = None\nimport litellm\nprint('ok')"
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.stdout.strip() == "ok", result.stderr[-2000:]
