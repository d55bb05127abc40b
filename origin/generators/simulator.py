"""A latency simulator: a deterministic answer at a configurable pace, with failure injection.

For tests and load tests: it costs no CPU, and its time-to-first-token and tokens-per-second are
what you set, so the edge's effect can be measured against a known origin.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass

from origin.generators.base import GenerationError, GenerationRequest, Piece, rough_token_count

_WORDS = ("the", "answer", "depends", "on", "context", "but", "in", "short", "yes", "it", "works",
          "as", "expected", "here", "is", "why", "and", "what", "to", "do", "next")


@dataclass
class SimulatedGenerator:
    ttft_s: float = 0.05
    tokens_per_s: float = 200.0
    answer_tokens: int = 32
    fail_rate: float = 0.0  # share of generations that fail before the first token
    fail_after_tokens: int | None = None  # break every stream after this many tokens
    seed: int = 0
    echo_tenant: bool = False  # start answers with the tenant: lets fault runs prove no answer crossed tenants
    name: str = "simulator"

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self.generations = 0  # how many generations started: the coalescing tests count these

    def count_prompt_tokens(self, request: GenerationRequest) -> int:
        return sum(rough_token_count(str(m.get("content") or "")) for m in request.messages)

    def answer_for(self, request: GenerationRequest) -> list[str]:
        digest = hashlib.sha256(f"{request.system}\x1f{request.prompt}".encode()).digest()
        count = min(self.answer_tokens, request.max_tokens)
        words = [_WORDS[b % len(_WORDS)] for b in (digest * (count // len(digest) + 1))[:count]]
        head = f"Simulated answer to: {request.prompt.strip()[:60]}."
        if self.echo_tenant:
            head = f"[{request.tenant}] {head}"
        return [head] + [" " + w for w in words[1:]]

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Piece]:
        self.generations += 1
        await asyncio.sleep(self.ttft_s)
        if self.fail_rate and self._random.random() < self.fail_rate:
            raise GenerationError("simulated failure before the first token")
        pieces = self.answer_for(request)
        interval = 1.0 / self.tokens_per_s if self.tokens_per_s > 0 else 0.0
        for index, piece in enumerate(pieces):
            if self.fail_after_tokens is not None and index >= self.fail_after_tokens:
                raise GenerationError(f"simulated failure after {index} tokens")
            if index and interval:
                await asyncio.sleep(interval)
            last = index == len(pieces) - 1
            # Cut short by max_tokens: say so, as a real model does, so the answer is never stored.
            truncated = request.max_tokens < self.answer_tokens
            yield Piece(piece, 1, finish_reason=("length" if truncated else "stop") if last else None)
