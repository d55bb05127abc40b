"""Any OpenAI-compatible chat completions endpoint: OpenAI, vLLM, Ollama, llama.cpp's server.

    EAVES_OPENAI_BASE_URL   e.g. https://api.openai.com/v1 or http://127.0.0.1:11434/v1
    EAVES_OPENAI_API_KEY    sent as a bearer token (optional for local servers)
    EAVES_OPENAI_MODEL      the upstream model name (default: the model the client asked for)

Always streams from upstream. Before the first token, 429, 5xx and connection failures are retried
with exponential backoff and jitter, honouring Retry-After, a bounded number of times; after it, a
failure ends the generation (nothing half-produced is ever cached).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx

from origin.generators.base import TOOL_FIELDS, GenerationError, GenerationRequest, Piece, rough_token_count

log = logging.getLogger("eaves.origin.openai")


class OpenAICompatGenerator:
    name = "openai"
    supports_tools = True

    def __init__(self, base_url: str, *, api_key: str = "", model: str = "", timeout_s: float = 60.0,
                 connect_timeout_s: float = 5.0, max_attempts: int = 4, backoff_base_s: float = 0.5,
                 backoff_max_s: float = 8.0, max_retry_after_s: float = 30.0,
                 client: httpx.AsyncClient | None = None) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise GenerationError(f"EAVES_OPENAI_BASE_URL must be an http(s) URL, not {base_url!r}")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.max_retry_after_s = max_retry_after_s
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = client or httpx.AsyncClient(
            headers=headers, timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s))
        if client is not None and api_key:
            self._client.headers.update(headers)
        self.attempts = 0
        self.model_names: tuple[str, ...] = (model,) if model else ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> OpenAICompatGenerator:
        base = environ.get("EAVES_OPENAI_BASE_URL")
        if not base:
            raise GenerationError("EAVES_GENERATOR=openai needs EAVES_OPENAI_BASE_URL "
                                  "(e.g. https://api.openai.com/v1)")
        return cls(base, api_key=environ.get("EAVES_OPENAI_API_KEY", ""), model=environ.get("EAVES_OPENAI_MODEL", ""),
                   timeout_s=float(environ.get("EAVES_OPENAI_TIMEOUT_S", "60")),
                   max_attempts=int(environ.get("EAVES_OPENAI_MAX_ATTEMPTS", "4")))

    def count_prompt_tokens(self, request: GenerationRequest) -> int:
        return sum(rough_token_count(str(m.get("content") or "")) for m in request.messages)

    def _payload(self, request: GenerationRequest) -> dict[str, Any]:
        payload: dict[str, Any] = {"model": self.model or request.model, "messages": request.messages,
                                   "max_tokens": request.max_tokens, "stream": True,
                                   "stream_options": {"include_usage": True}}
        if request.temperature is not None:
            payload["temperature"] = request.temperature
        if request.extra.get("stop"):
            payload["stop"] = request.extra["stop"]
        for name in TOOL_FIELDS:
            if request.extra.get(name) is not None:
                payload[name] = request.extra[name]
        for name, value in request.extra.get("sampling", {}).items():
            payload.setdefault(name, value)
        if request.user:
            payload["user"] = request.user  # OpenAI: "a unique identifier representing your end-user"
        return payload

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Piece]:
        payload = self._payload(request)
        for attempt in range(1, self.max_attempts + 1):
            self.attempts += 1
            retry_in: float | None = None
            try:
                async with self._client.stream("POST", self.url, json=payload) as response:
                    if response.status_code == 429 or response.status_code >= 500:
                        await response.aread()
                        retry_in = self._retry_delay(response, attempt)
                        reason = f"status {response.status_code}"
                    elif response.status_code >= 400:
                        await response.aread()
                        raise GenerationError(f"the upstream refused the request with status "
                                              f"{response.status_code}: {_error_text(response)}")
                    else:
                        async for piece in _pieces(response):
                            yield piece
                        return
            except httpx.TimeoutException as exc:
                raise GenerationError(f"the upstream timed out ({type(exc).__name__})") from exc
            except (httpx.ConnectError, httpx.RemoteProtocolError) as exc:
                # Safe to retry only while nothing reached the client: _pieces raises
                # GenerationError itself once the stream has started.
                retry_in = self._backoff(attempt)
                reason = type(exc).__name__
            except httpx.HTTPError as exc:
                raise GenerationError(f"the upstream failed ({type(exc).__name__}: {exc})") from exc
            if attempt == self.max_attempts:
                raise GenerationError(f"the upstream kept failing ({reason}) after {attempt} attempts")
            log.warning("upstream %s; retrying in %.2fs (attempt %d/%d)", reason, retry_in, attempt,
                        self.max_attempts)
            await asyncio.sleep(retry_in)

    def _retry_delay(self, response: httpx.Response, attempt: int) -> float:
        value = response.headers.get("retry-after")
        if value:
            try:
                return min(max(0.0, float(value)), self.max_retry_after_s)
            except ValueError:
                pass
        return self._backoff(attempt)

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)

    async def aclose(self) -> None:
        await self._client.aclose()


def _error_text(response: httpx.Response) -> str:
    try:
        error = response.json().get("error")
        return str(error.get("message") if isinstance(error, dict) else error)[:300]
    except (ValueError, AttributeError):
        return response.text[:300]


async def _pieces(response: httpx.Response) -> AsyncIterator[Piece]:
    """The content deltas of an OpenAI SSE stream; the final usage chunk as exact counts."""
    started = False
    try:
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue  # blank separators, comments (heartbeats), event:/id: fields
            data = line[5:].strip()
            if data == "[DONE]":
                return
            try:
                chunk = json.loads(data)
            except json.JSONDecodeError as exc:
                raise GenerationError("the upstream sent a malformed stream chunk") from exc
            if isinstance(chunk, dict) and chunk.get("error"):
                error = chunk["error"]
                message = error.get("message") if isinstance(error, dict) else str(error)
                raise GenerationError(f"the upstream failed mid-stream: {message}")
            usage = chunk.get("usage") if isinstance(chunk, dict) else None
            for choice in chunk.get("choices") or []:
                text = (choice.get("delta") or {}).get("content")
                if text:
                    started = True
                    yield Piece(text, 1)
                calls = (choice.get("delta") or {}).get("tool_calls")
                if isinstance(calls, list) and calls:
                    started = True
                    yield Piece("", 0, tool_calls=calls)
                reason = choice.get("finish_reason")
                if isinstance(reason, str) and reason:
                    yield Piece("", 0, finish_reason=reason)
            if usage:
                yield Piece("", 0, {"prompt_tokens": int(usage.get("prompt_tokens", 0)),
                                    "completion_tokens": int(usage.get("completion_tokens", 0))})
    except httpx.HTTPError as exc:
        raise GenerationError(f"the upstream stream broke ({type(exc).__name__})") from exc
    raise GenerationError("the upstream stream ended without [DONE]" if started
                          else "the upstream closed the stream before answering")
