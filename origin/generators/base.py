"""The generator port: a chat request in, text pieces out as the model produces them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

# The chat fields that ask for tool calls: forwarded unchanged to a generator that ``supports_tools``
# (the model names the calls; the client runs them).
TOOL_FIELDS = ("tools", "tool_choice", "parallel_tool_calls")


class GenerationError(Exception):
    """The model failed; nothing it produced may be cached."""


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    model: str
    messages: list[dict[str, Any]]
    prompt: str  # the last user message
    system: str = ""
    max_tokens: int = 256
    temperature: float | None = None
    tenant: str = ""  # who asked (from the signed x-eaves-tenant header): for accounting, never for the prompt
    user: str = ""  # the end user (signed x-eaves-user), sent only when the answer is not shared; "" if unknown
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Piece:
    text: str
    tokens: int = 1  # completion tokens this piece accounts for
    # Exact counts when the backend reports them (an OpenAI-compatible API's final usage chunk):
    # {"prompt_tokens": n, "completion_tokens": m}; they replace the running estimate.
    usage: dict[str, int] | None = None
    # Why the model stopped, on the last piece when the backend says ("stop", "length", "content_filter",
    # "tool_calls"); only an answer that ended with "stop" is complete enough to store for others.
    finish_reason: str | None = None
    # Tool-call deltas as an OpenAI stream sends them ([{"index": 0, "id": ..., "function": {...}}]);
    # only a generator with ``supports_tools`` produces them.
    tool_calls: list[dict[str, Any]] | None = None


class Generator(Protocol):
    name: str
    # Whether it can answer a request with ``tools`` (an OpenAI-compatible upstream can); the origin refuses
    # such a request with a 400 for a generator that cannot, rather than answer as if no tools were given.
    supports_tools: bool
    # Model ids it answers to besides the origin's default model (GET /v1/models lists them).
    model_names: tuple[str, ...]

    def stream(self, request: GenerationRequest) -> AsyncIterator[Piece]:
        """Yield the answer as it is produced; raise GenerationError on failure."""

    def count_prompt_tokens(self, request: GenerationRequest) -> int: ...


def rough_token_count(text: str) -> int:
    """~4 characters a token, the usual rule of thumb for English BPE vocabularies."""
    return max(1, (len(text) + 3) // 4) if text else 0
