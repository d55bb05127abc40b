"""Accounting: tokens in and out, generation time and an estimated cost per answer, and the
process-wide totals kept for metrics.

The usage block is OpenAI's (``prompt_tokens``, ``completion_tokens``, ``total_tokens``); eaves' own
figures ride inside it under ``eaves`` (OpenAI's client models keep unknown fields, so
``completion.usage.model_extra["eaves"]`` reads them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Prices:
    """US dollars per million tokens: an estimate for comparing routes, not a bill."""

    prompt_per_mtok: float = 0.50
    completion_per_mtok: float = 1.50

    @classmethod
    def from_env(cls, environ: dict[str, str]) -> Prices:
        default = cls()
        return cls(float(environ.get("EAVES_PRICE_PROMPT_PER_MTOK", default.prompt_per_mtok)),
                   float(environ.get("EAVES_PRICE_COMPLETION_PER_MTOK", default.completion_per_mtok)))

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.prompt_per_mtok + completion_tokens * self.completion_per_mtok) / 1e6


def usage_block(prompt_tokens: int, completion_tokens: int, *, generation_s: float, ttft_s: float | None,
                generator: str, prices: Prices) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "eaves": {
            "generator": generator,
            "generation_ms": round(generation_s * 1000, 1),
            "ttft_ms": None if ttft_s is None else round(ttft_s * 1000, 1),
            "estimated_cost_usd": round(prices.cost(prompt_tokens, completion_tokens), 8),
        },
    }


@dataclass
class Totals:
    """What the origin has done since it started; ``snapshot()`` is what /healthz and metrics read."""

    requests: int = 0  # chat completion requests that passed the signature check
    generations: int = 0
    generation_failures: int = 0
    coalesced: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    generation_seconds: float = 0.0
    estimated_cost_usd: float = 0.0
    writebacks: int = 0
    writeback_failures: int = 0
    jobs_accepted: int = 0
    jobs_failed: int = 0
    extra: dict[str, float] = field(default_factory=dict)

    def record(self, usage: dict[str, Any]) -> None:
        self.generations += 1
        self.prompt_tokens += int(usage["prompt_tokens"])
        self.completion_tokens += int(usage["completion_tokens"])
        own = usage.get("eaves") or {}
        self.generation_seconds += float(own.get("generation_ms") or 0) / 1000
        self.estimated_cost_usd += float(own.get("estimated_cost_usd") or 0)

    def snapshot(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in self.__dataclass_fields__ if name != "extra"}
        data["generation_seconds"] = round(self.generation_seconds, 3)
        data["estimated_cost_usd"] = round(self.estimated_cost_usd, 6)
        return {**data, **self.extra}
