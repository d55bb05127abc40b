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


def chunk(completion_id: str, created: int, model: str, delta: dict[str, Any], *,
          finish_reason: str | None = None, usage: dict[str, Any] | None = None) -> bytes:
    payload: dict[str, Any] = {
        "id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }
    if usage is not None:
        payload["usage"] = usage
    return event(payload)


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
    parts = [chunk(completion_id, created, model, {"role": "assistant", "content": ""})]
    if content:
        parts.append(chunk(completion_id, created, model, {"content": content}))
    parts.append(chunk(completion_id, created, model, {}, finish_reason=choice.get("finish_reason") or "stop",
                       usage=completion.get("usage")))
    parts.append(DONE)
    return b"".join(parts)


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
