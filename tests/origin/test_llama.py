"""The embedded generator: prompt rendering always; the real model when the llm extra is installed."""

from __future__ import annotations

import asyncio
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


# ---------------------------------------------------------------- control tokens, with a stand-in llama.cpp

CONTROL, USER_DEFINED, NORMAL = 1 << 3, 1 << 4, 1 << 2
# id: (text, attribute); like Gemma 3: <eos> ends a turn, <start_of_image> and <unused7> are user-defined.
VOCAB = {0: ("<pad>", CONTROL), 1: ("<eos>", CONTROL), 2: ("<start_of_image>", USER_DEFINED),
         3: ("<unused7>", USER_DEFINED), 4: (" Paris", NORMAL), 5: (" is", NORMAL), 6: ("<h1>", USER_DEFINED)}
EOS = 1


class FakeVocab:
    vocab = object()

    def token_get_attr(self, token: int) -> int:
        return VOCAB[token][1]

    def token_get_text(self, token: int) -> str:
        return VOCAB[token][0]


class FakeLlama:
    """llama_cpp.Llama's surface that LlamaGenerator uses. Like the real one it samples from the scores left
    after the logits processors, and detokenises without special tokens: CONTROL tokens vanish, USER_DEFINED
    ones are printed as their text."""

    def __init__(self, steps: list[list[float]]) -> None:
        self.steps = steps
        self._model = FakeVocab()

    def n_vocab(self) -> int:
        return len(VOCAB)

    def token_eos(self) -> int:
        return EOS

    def tokenize(self, text: bytes, add_bos: bool = True) -> list[int]:
        return [4] * max(1, len(text) // 4)

    def close(self) -> None:
        return None

    def create_completion(self, prompt: str, *, max_tokens: int, logits_processor: Any = None,
                          **kwargs: Any) -> Iterator[dict[str, Any]]:
        import numpy as np

        finish = "length"
        for row in self.steps[:max_tokens]:
            scores = np.asarray(row, dtype=np.single)
            for process in logits_processor or []:
                scores = process(np.asarray([], dtype=np.intc), scores)
            token = int(np.argmax(scores))
            if token == EOS:
                finish = "stop"
                break
            text, attr = VOCAB[token]
            yield {"choices": [{"text": "" if attr & CONTROL else text, "finish_reason": None}]}
        yield {"choices": [{"text": "", "finish_reason": finish}]}


@pytest.fixture
def fake_llama(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakeLlama]]:
    module = types.ModuleType("llama_cpp")
    module.LogitsProcessorList = list  # type: ignore[attr-defined]
    module.llama_vocab_is_eog = lambda vocab, token: token == EOS  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "llama_cpp", module)
    yield FakeLlama


async def generate(model: FakeLlama, monkeypatch: pytest.MonkeyPatch, max_tokens: int = 16) -> tuple[str, str]:
    monkeypatch.setattr("origin.generators.llama.load_model", lambda *a, **k: model)
    generator = LlamaGenerator(Path("model.gguf"), n_threads=1)
    pieces = [p async for p in generator.stream(request([{"role": "user", "content": "Capital of France?"}],
                                                        max_tokens=max_tokens))]
    reasons = [p.finish_reason for p in pieces if p.finish_reason]
    return "".join(p.text for p in pieces), reasons[-1]


class TestControlTokens:
    async def test_markers_are_never_sampled_so_never_printed(self, fake_llama: type[FakeLlama],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
        """Where the model's top choice is <start_of_image> or <unused7>, the answer continues with text."""
        #          pad   eos   image unused Paris is   h1
        steps = [[0.0, 0.0, 9.0, 0.0, 5.0, 0.0, 0.0],
                 [0.0, 0.0, 0.0, 9.0, 0.0, 5.0, 0.0],
                 [0.0, 9.0, 0.0, 0.0, 0.0, 0.0, 0.0]]
        text, finish = await generate(fake_llama(steps), monkeypatch)
        assert text == "Paris is" and "<" not in text
        assert finish == "stop"

    async def test_end_of_turn_and_ordinary_user_tokens_stay(self, fake_llama: type[FakeLlama],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
        """The end-of-generation token still ends the answer, and a user-defined token that is text (an HTML
        tag) is kept; the ban list holds exactly the non-text tokens."""
        from origin.generators.llama import control_tokens

        assert control_tokens(fake_llama([])) == [0, 2, 3]
        steps = [[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 9.0], [0.0, 0.0, 0.0, 0.0, 9.0, 0.0, 0.0]]
        text, finish = await generate(fake_llama(steps), monkeypatch, max_tokens=2)
        assert text == "<h1> Paris" and finish == "length"
