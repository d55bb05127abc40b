"""Server-sent events in the OpenAI chat-completions streaming format, built by hand.

Both sides use it: the origin to stream a generation, the edge to replay a stored completion as a
stream and to end a broken stream with an error event the OpenAI clients raise. Standard library only.

    data: {"object": "chat.completion.chunk", ... "delta": {"content": "Hel"}}\\n\\n
    : keep-alive\\n\\n                                 (a comment: clients ignore it)
    data: {"error": {"message": ..., "type": ..., "code": ...}}\\n\\n
    data: [DONE]\\n\\n
"""

from __future__ import annotations

import json
from typing import Any

MEDIA_TYPE = "text/event-stream"
DONE = b"data: [DONE]\n\n"
HEARTBEAT = b": keep-alive\n\n"
_SEPARATORS = (",", ":")


def event(payload: Any) -> bytes:
    return b"data: " + json.dumps(payload, separators=_SEPARATORS, ensure_ascii=False).encode() + b"\n\n"


def named_event(name: str, payload: Any) -> bytes:
    """An event with an ``event:`` line: the Responses API names every event after its ``type``."""
    return b"event: " + name.encode() + b"\n" + event(payload)


def chunk(completion_id: str, created: int, model: str, delta: dict[str, Any], *,
          finish_reason: str | None = None, usage: dict[str, Any] | None = None) -> bytes:
    payload: dict[str, Any] = {
        "id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }
    if usage is not None:
        payload["usage"] = usage
    return event(payload)


def usage_chunk(completion_id: str, created: int, model: str, usage: dict[str, Any]) -> bytes:
    """The extra last chunk OpenAI sends when ``stream_options.include_usage`` is set: no choices, the usage."""
    return event({"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                  "choices": [], "usage": usage})


def wants_usage(request: dict[str, Any]) -> bool:
    """Whether a chat request asked for the usage chunk (``stream_options: {"include_usage": true}``)."""
    options = request.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def error_event(message: str, *, error_type: str = "upstream_error", code: str = "stream_broken") -> bytes:
    """The event OpenAI's clients turn into an ``APIError`` mid-stream."""
    return event({"error": {"message": message, "type": error_type, "code": code, "param": None}})


def completion_to_sse(body: bytes) -> bytes:
    """A stored (non-streamed) completion body replayed as a whole stream, ``[DONE]`` included.

    Raises ValueError when the body is not a chat completion.
    """
    try:
        completion = json.loads(body)
        choice = completion["choices"][0]
        content = choice["message"]["content"]
        completion_id, created, model = completion["id"], completion["created"], completion["model"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise ValueError("stored body is not a chat completion") from exc
    message = choice["message"]
    parts = [chunk(completion_id, created, model, {"role": "assistant", "content": ""})]
    if content:
        parts.append(chunk(completion_id, created, model, {"content": content}))
    if message.get("tool_calls"):
        calls = [{"index": i, **call} for i, call in enumerate(message["tool_calls"])]
        parts.append(chunk(completion_id, created, model, {"tool_calls": calls}))
    # The usage rides on the finish chunk here; the edge moves it to its own chunk (or drops it) to match
    # what the client asked for (edge.streaming.shape_usage).
    parts.append(chunk(completion_id, created, model, {}, finish_reason=choice.get("finish_reason") or "stop",
                       usage=completion.get("usage")))
    parts.append(DONE)
    return b"".join(parts)


class EventReader:
    """Splits a byte stream into whole SSE events (each ending in a blank line), across chunk splits."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        if b"\n\n" not in self._buffer:
            return []
        *events, self._buffer = self._buffer.split(b"\n\n")
        return [e + b"\n\n" for e in events if e]

    @property
    def pending(self) -> bytes:
        """Bytes of an event not yet ended by a blank line."""
        return self._buffer


def data_of(raw_event: bytes) -> bytes | None:
    """The ``data:`` payload of one event, or None for a comment (a heartbeat) or an event without data."""
    lines = [line[5:].lstrip(b" ") for line in raw_event.split(b"\n") if line.startswith(b"data:")]
    return b"\n".join(lines) if lines else None


class StreamWatcher:
    """Watches relayed SSE bytes for a clean end (``[DONE]``) or an error event, across chunk splits."""

    __slots__ = ("_tail", "done", "errored")

    def __init__(self) -> None:
        self._tail = b""
        self.done = False
        self.errored = False

    def feed(self, data: bytes) -> None:
        window = self._tail + data
        if DONE in window:
            self.done = True
        if b'data: {"error"' in window:
            self.errored = True
        self._tail = window[-32:]

    @property
    def finished(self) -> bool:
        return self.done or self.errored
