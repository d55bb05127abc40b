"""The embedded generator: prompt rendering always; the real model when the llm extra is installed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from origin.generators.base import GenerationRequest
from origin.generators.llama import LlamaGenerator, completion_prompt, llama_available
from tests.tiers import require_tool


@pytest.fixture(scope="module")
def needs_model() -> None:
    require_tool("llm", llama_available(), "the embedded model (llama-cpp-python and the Gemma GGUF)")


def request(messages: list[dict[str, str]], **kwargs: object) -> GenerationRequest:
    return GenerationRequest(model="m", messages=messages, prompt=messages[-1]["content"], **kwargs)  # type: ignore[arg-type]


class TestPrompt:
    def test_renders_a_question_and_answer_transcript_for_a_base_model(self) -> None:
        """History becomes Question/Answer pairs and the prompt ends with 'Answer:' for the model to continue."""
        prompt = completion_prompt(request([{"role": "user", "content": "Hi\nthere"},
                                            {"role": "assistant", "content": "Hello."},
                                            {"role": "user", "content": "Capital of France?"}]))
        assert prompt.splitlines() == ["Below are questions with helpful, accurate answers.", "",
                                       "Question: Hi there", "Answer: Hello.", "Question: Capital of France?",
                                       "Answer:"]

    def test_system_message_replaces_the_preamble(self) -> None:
        """A system message is the transcript's first line."""
        prompt = completion_prompt(GenerationRequest(model="m", messages=[{"role": "user", "content": "q"}],
                                                     prompt="q", system="You answer in French."))
        assert prompt.startswith("You answer in French.\n")


@pytest.fixture(scope="module")
def generator(needs_model: None) -> Iterator[LlamaGenerator]:
    """One model for the module (loading it is the slow part), freed before the interpreter exits."""
    model = LlamaGenerator()
    yield model
    asyncio.run(model.aclose())


@pytest.mark.usefixtures("needs_model")
class TestModel:
    async def test_respects_max_tokens_and_keeps_the_loop_responsive(self, generator: LlamaGenerator) -> None:
        """Generation stays within max_tokens and runs off the event loop: another task gets turns while the
        model reads the prompt, before its first token (a blocking call would run it only afterwards)."""
        events: list[str] = []

        async def ticker() -> None:
            while True:
                await asyncio.sleep(0)
                events.append("tick")

        task = asyncio.ensure_future(ticker())
        tokens, text = 0, []
        async for piece in generator.stream(request([{"role": "user", "content": "Write a long story about a cat."}],
                                                    max_tokens=8, temperature=0.0)):
            events.append("piece")
            tokens += piece.tokens
            text.append(piece.text)
        task.cancel()
        assert 0 < tokens <= 8 and "".join(text).strip()
        assert "tick" in events[:events.index("piece")]  # the loop ran while the model worked
        assert generator.count_prompt_tokens(request([{"role": "user", "content": "hello"}])) > 3

    async def test_stops_at_the_next_question(self, generator: LlamaGenerator) -> None:
        """A stop sequence ends the answer before the model invents the next turn."""
        text = "".join([p.text async for p in generator.stream(request(
            [{"role": "user", "content": "What is the capital of France?"}], max_tokens=64, temperature=0.0))])
        assert "Question:" not in text and not text.endswith(("\n", " "))
