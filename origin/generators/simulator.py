"""A latency simulator: a deterministic answer at a configurable pace, with failure injection.

For tests and load tests: it costs no CPU, and its time-to-first-token and tokens-per-second are
what you set, so the edge's effect can be measured against a known origin.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass

from origin.generators.base import GenerationError, GenerationRequest, Piece, rough_token_count

_WORDS = ("the", "answer", "depends", "on", "context", "but", "in", "short", "yes", "it", "works",
          "as", "expected", "here", "is", "why", "and", "what", "to", "do", "next")
ANSWER_MARK = "Simulated answer to:"
_FOR = "[for "


def _end_user(request: GenerationRequest) -> str:
    # The end user arrives from the edge in the signed x-eaves-user header (issue 16 item 1), and only for
    # answers the edge will not share; read it defensively so this works on an origin without the field.
    user = getattr(request, "user", None) or request.extra.get("user")
    return user if isinstance(user, str) else ""


def answer_head(tenant: str, user: str, prompt: str) -> str:
    """``[tenant] [for "user"] Simulated answer to: prompt.`` (the user part only when one is known).

    The user is JSON-quoted so any user id, brackets and quotes included, reads back exactly."""
    who = f"{_FOR}{json.dumps(user)}] " if user else ""
    return f"[{tenant}] {who}{ANSWER_MARK} {prompt.strip()[:60]}."


def answered_for(content: str) -> tuple[str, str | None] | None:
    """(tenant, end user or None) that a simulated answer names, or None if it names no tenant."""
    if not content.startswith("["):
        return None
    tenant, sep, rest = content[1:].partition("] ")
    if not sep:
        return None
    if rest.startswith(ANSWER_MARK):
        return tenant, None
    if not rest.startswith(_FOR):
        return None
    try:
        user, end = json.JSONDecoder().raw_decode(rest, len(_FOR))
    except json.JSONDecodeError:
        return None
    if not isinstance(user, str) or not rest.startswith("] " + ANSWER_MARK, end):
        return None
    return tenant, user


@dataclass
class SimulatedGenerator:
    ttft_s: float = 0.05
    tokens_per_s: float = 200.0
    answer_tokens: int = 32
    fail_rate: float = 0.0  # share of generations that fail before the first token
    fail_after_tokens: int | None = None  # break every stream after this many tokens
    seed: int = 0
    # Start answers with the tenant and the end user they were generated for: lets fault runs and
    # `eaves scenarios` prove that no answer crossed tenants or users (see answered_for).
    echo_tenant: bool = False
    name: str = "simulator"
    supports_tools: bool = False
    model_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self.generations = 0  # how many generations started: the coalescing tests count these

    def count_prompt_tokens(self, request: GenerationRequest) -> int:
        return sum(rough_token_count(str(m.get("content") or "")) for m in request.messages)

    def answer_for(self, request: GenerationRequest) -> list[str]:
        digest = hashlib.sha256(f"{request.system}\x1f{request.prompt}".encode()).digest()
        count = min(self.answer_tokens, request.max_tokens)
        words = [_WORDS[b % len(_WORDS)] for b in (digest * (count // len(digest) + 1))[:count]]
        head = answer_head(request.tenant, _end_user(request), request.prompt) if self.echo_tenant \
            else f"{ANSWER_MARK} {request.prompt.strip()[:60]}."
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
