"""OpenAI's Responses API at the edge, translated to and from chat completions at the boundary.

    POST /v1/responses ──► ResponsesCall.translate: a chat-completions body ──► the chat pipeline
                                                                                (auth, limits, key, cache, origin)
         client ◄── ResponsesCall.adapt: a Response object, or the Responses streaming events ◄──┘

Why a translation and not a second pipeline: who is served what (the key and its scope, the cache,
coalescing, fallbacks, jobs) then has one implementation, and the origin only ever sees chat
completions. A Responses request and the equivalent chat request are the same question, so they share
one cache entry; the stored body is always a chat completion, rendered per client on the way out.

Served: ``input`` as a string or message items with text parts, ``instructions``, ``max_output_tokens``,
``temperature``, ``top_p``, ``text.format`` (text, json_object, json_schema), ``reasoning.effort``,
``user``/``safety_identifier``, ``stream``; ``metadata`` and hints that cannot change the answer are
accepted. Refused with a 400 naming the field (never answered as if the field were absent): anything
that needs state this edge does not keep (``previous_response_id``, ``conversation``, ``background``,
``prompt``), tools, non-text input, and fields it does not know.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from edge.http import EdgeResponse, json_bytes
from edge.streaming import rewrite
from shared import sse, wire

PATH = "/v1/responses"

# Accepted and not forwarded: none of them changes the answer (store: this edge keeps no responses, and
# says so with "store": false in every Response it returns).
_HINTS = frozenset({"metadata", "store", "service_tier", "prompt_cache_key", "prompt_cache_retention",
                    "stream_options", "truncation", "parallel_tool_calls"})
_FORWARDED = frozenset({"model", "input", "instructions", "max_output_tokens", "temperature", "top_p", "text",
                        "reasoning", "user", "safety_identifier", "stream", "tools", "tool_choice", "include"})
# Fields whose presence (with a value) asks for something this edge cannot do, and why.
_REFUSED = {
    "previous_response_id": "this edge stores no responses; send the whole conversation in 'input'",
    "conversation": "this edge stores no conversations; send the whole conversation in 'input'",
    "background": "background responses are not served; use 'Prefer: respond-async' on /v1/chat/completions",
    "prompt": "stored prompt templates are not served; send the text in 'instructions' and 'input'",
    "top_logprobs": "log probabilities are not served",
    "max_tool_calls": "tools are not served on /v1/responses",
}
_TEXT_PARTS = frozenset({"input_text", "output_text", "text"})

# A popular question arrives as the same bytes again and again, and its stored answer is the same bytes too:
# the translation each way is remembered for small bodies (as edge.parsing does for chat bodies), which keeps
# a Responses hit near a chat hit instead of paying two JSON parses and two encodings each time.
MEMO_ENTRIES = 1024
MEMO_MAX_BYTES = 4096
_translated: dict[bytes, tuple[dict[str, Any], bytes]] = {}
_rendered: dict[tuple[bytes, bytes], bytes] = {}


def _remember(table: dict[Any, Any], key: Any, value: Any) -> None:
    if len(table) >= MEMO_ENTRIES:
        del table[next(iter(table))]  # the oldest entry: insertion order
    table[key] = value
_ROLES = frozenset({"user", "assistant", "system", "developer"})


def _bad(message: str, param: str) -> wire.WireError:
    return wire.WireError(message, param)


def _absent(value: Any) -> bool:
    """Clients send null, false or an empty list for an option they do not use."""
    return value is None or value is False or value == [] or value == {}


def _message(item: Any, where: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise _bad(f"{where} must be an object", where)
    kind = item.get("type", "message")
    if kind != "message":
        raise _bad(f"{where} is a {kind!r} item; this edge serves text messages only (no tool calls, reasoning "
                   "or item references)", f"{where}.type")
    role = item.get("role")
    if role not in _ROLES:
        raise _bad(f"{where}.role must be one of {', '.join(sorted(_ROLES))}", f"{where}.role")
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise _bad(f"{where}.content must be a string or a list of text parts", f"{where}.content")
    parts = []
    for j, part in enumerate(content):
        at = f"{where}.content[{j}]"
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise _bad(f"{at} must be an object with a 'type'", at)
        if part["type"] not in _TEXT_PARTS:
            raise _bad(f"{at} has type {part['type']!r}; this edge serves text only (input_text, output_text)",
                       f"{at}.type")
        if not isinstance(part.get("text"), str):
            raise _bad(f"{at}.text must be a string", f"{at}.text")
        parts.append({"type": "text", "text": part["text"]})
    return {"role": role, "content": parts}


def _response_format(text: Any) -> tuple[dict[str, Any] | None, str | None]:
    if not isinstance(text, dict):
        raise _bad("'text' must be an object", "text")
    unknown = set(text) - {"format", "verbosity"}
    if unknown:
        raise _bad(f"'text.{sorted(unknown)[0]}' is not supported", f"text.{sorted(unknown)[0]}")
    verbosity = text.get("verbosity")
    if verbosity is not None and not isinstance(verbosity, str):
        raise _bad("'text.verbosity' must be a string", "text.verbosity")
    fmt = text.get("format")
    if fmt is None:
        return None, verbosity
    if not isinstance(fmt, dict) or fmt.get("type") not in ("text", "json_object", "json_schema"):
        raise _bad("'text.format.type' must be text, json_object or json_schema", "text.format")
    if fmt["type"] == "text":
        return None, verbosity
    if fmt["type"] == "json_object":
        return {"type": "json_object"}, verbosity
    schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
    return {"type": "json_schema", "json_schema": schema}, verbosity


def to_chat(request: dict[str, Any]) -> dict[str, Any]:
    """The chat-completions request that asks what ``request`` (a Responses request) asks; raises WireError."""
    for name, value in request.items():
        if name in _HINTS or _absent(value):
            continue
        if name in _REFUSED:
            raise _bad(f"'{name}' is not supported: {_REFUSED[name]}", name)
        if name not in _FORWARDED:
            raise _bad(f"unknown or unsupported parameter '{name}' for /v1/responses", name)

    messages: list[dict[str, Any]] = []
    instructions = request.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise _bad("'instructions' must be a string", "instructions")
        messages.append({"role": "system", "content": instructions})
    source = request.get("input")
    if isinstance(source, str):
        messages.append({"role": "user", "content": source})
    elif isinstance(source, list) and source:
        messages.extend(_message(item, f"input[{i}]") for i, item in enumerate(source))
    else:
        raise _bad("'input' is required: a string or a non-empty list of message items", "input")

    chat: dict[str, Any] = {"messages": messages}
    if "model" in request:
        chat["model"] = request["model"]
    limit = request.get("max_output_tokens")
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise _bad("'max_output_tokens' must be a positive integer", "max_output_tokens")
        chat["max_tokens"] = limit
    for name in ("temperature", "top_p"):
        if request.get(name) is not None:
            chat[name] = request[name]
    user = request.get("user") or request.get("safety_identifier")
    if user is not None:
        chat["user"] = user
    if request.get("text") is not None:
        response_format, verbosity = _response_format(request["text"])
        if response_format is not None:
            chat["response_format"] = response_format
        if verbosity is not None:
            chat["verbosity"] = verbosity
    reasoning = request.get("reasoning")
    if not _absent(reasoning):
        if not isinstance(reasoning, dict) or any(k not in ("effort", "summary") for k in reasoning):
            raise _bad("'reasoning' must be an object with 'effort'", "reasoning")
        if reasoning.get("summary") is not None:
            raise _bad("'reasoning.summary' is not served: the answer carries no reasoning items", "reasoning.summary")
        if reasoning.get("effort") is not None:
            chat["reasoning_effort"] = reasoning["effort"]
    if not _absent(request.get("tools")):
        raise _bad("'tools' are not served on /v1/responses: send function tools to /v1/chat/completions "
                   "(an OpenAI-compatible origin runs them there)", "tools")
    if request.get("tool_choice") not in (None, "auto", "none"):
        raise _bad("'tool_choice' needs tools, which are not served on /v1/responses", "tool_choice")
    if not _absent(request.get("include")):
        raise _bad("'include' is not served: a Response here holds the output text and usage only", "include")
    stream = request.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise _bad("'stream' must be true or false", "stream")
    if stream:
        # The last Responses event carries the usage, so the chat stream must too.
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat


def _usage(usage: Any) -> dict[str, Any] | None:
    if not isinstance(usage, dict):
        return None
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    out: dict[str, Any] = {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": 0},
                           "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": 0},
                           "total_tokens": prompt + completion}
    if isinstance(usage.get("eaves"), dict):
        out["eaves"] = usage["eaves"]
    return out


# finish_reason → (status, incomplete_details)
_FINISH: dict[str, tuple[str, dict[str, str] | None]] = {
    "stop": ("completed", None),
    "length": ("incomplete", {"reason": "max_output_tokens"}),
    "content_filter": ("incomplete", {"reason": "content_filter"}),
}


@dataclass
class ResponsesCall:
    """One Responses request: its translation to chat, then the chat answer rendered back as Responses."""

    request: dict[str, Any] = field(default_factory=dict)
    body: bytes = b""

    def translate(self, body: bytes) -> bytes:
        """The chat body for this Responses body (``edge.app`` calls it after auth); raises WireError."""
        self.body = body
        found = _translated.get(body)
        if found is not None:
            self.request = found[0]
            return found[1]
        try:
            request = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise wire.WireError(f"request body is not valid JSON: {exc}") from exc
        if not isinstance(request, dict):
            raise wire.WireError("request body must be a JSON object")
        chat = json_bytes(to_chat(request))
        self.request = request
        if len(body) <= MEMO_MAX_BYTES:
            _remember(_translated, body, (request, chat))  # only valid bodies: an error is raised every time
        return chat

    def adapt(self, response: EdgeResponse) -> EdgeResponse:
        """A chat answer as the Responses client expects it; errors and job tickets pass unchanged (the
        error body's shape is the same in both APIs)."""
        if response.status != 200:
            return response
        if not isinstance(response.body, bytes | bytearray):
            if response.content_type.startswith(sse.MEDIA_TYPE):
                response.body = rewrite(response.body, lambda: EventWriter(self))
            return response
        stored = bytes(response.body)
        found = _rendered.get((self.body, stored))
        if found is not None:
            response.body = found
            return response
        if response.content_type.startswith(sse.MEDIA_TYPE):  # a stored answer replayed as a stream
            rendered = rewrite(stored, lambda: EventWriter(self))
            assert isinstance(rendered, bytes)
            response.body = rendered
            if len(stored) + len(self.body) <= MEMO_MAX_BYTES:
                _remember(_rendered, (self.body, stored), rendered)
            return response
        try:
            completion = json.loads(stored)
        except ValueError:
            return response
        if not isinstance(completion, dict) or completion.get("object") != "chat.completion":
            return response
        response.body = json_bytes(self.response_object(completion))
        if len(stored) + len(self.body) <= MEMO_MAX_BYTES:
            _remember(_rendered, (self.body, stored), response.body)
        return response

    # ------------------------------------------------------------------ the Response object

    def envelope(self, completion_id: str, created: int, model: str, status: str, output: list[dict[str, Any]],
                 usage: dict[str, Any] | None = None, incomplete: dict[str, str] | None = None,
                 error: dict[str, Any] | None = None) -> dict[str, Any]:
        r = self.request
        text: dict[str, Any] = {"format": {"type": "text"}}
        if isinstance(r.get("text"), dict) and isinstance(r["text"].get("format"), dict):
            text = {"format": r["text"]["format"]}
        return {
            "id": response_id(completion_id), "object": "response", "created_at": created, "status": status,
            "background": False, "error": error, "incomplete_details": incomplete,
            "instructions": r.get("instructions"), "max_output_tokens": r.get("max_output_tokens"),
            "model": model, "output": output, "parallel_tool_calls": True, "previous_response_id": None,
            "reasoning": {"effort": None, "summary": None}, "service_tier": "default", "store": False,
            "temperature": r.get("temperature", 1.0), "text": text, "tool_choice": "auto", "tools": [],
            "top_p": r.get("top_p", 1.0), "truncation": "disabled", "usage": usage,
            "user": r.get("user"), "metadata": r.get("metadata") or {},
        }

    def response_object(self, completion: dict[str, Any]) -> dict[str, Any]:
        choice = (completion.get("choices") or [{}])[0]
        text = (choice.get("message") or {}).get("content") or ""
        status, incomplete = _FINISH.get(choice.get("finish_reason") or "stop", ("completed", None))
        completion_id = str(completion.get("id", ""))
        item = message_item(completion_id, text, "completed" if status == "completed" else "incomplete")
        return self.envelope(completion_id, int(completion.get("created") or time.time()),
                             str(completion.get("model", "")), status, [item], _usage(completion.get("usage")),
                             incomplete)


def response_id(completion_id: str) -> str:
    # Derived from the completion's id, so a replayed answer keeps its ids.
    return "resp_" + completion_id.removeprefix("chatcmpl-")


def message_item(completion_id: str, text: str | None, status: str) -> dict[str, Any]:
    content = [] if text is None else [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
    return {"type": "message", "id": "msg_" + completion_id.removeprefix("chatcmpl-"), "status": status,
            "role": "assistant", "content": content}


class EventWriter:
    """A chat-completions SSE stream rewritten, chunk by chunk, as the Responses streaming events.

    created → in_progress → output_item.added → content_part.added → output_text.delta… →
    output_text.done → content_part.done → output_item.done → completed (or incomplete); an error event in
    the chat stream becomes ``error`` then ``response.failed``. Heartbeat comments pass through.
    """

    def __init__(self, call: ResponsesCall) -> None:
        self.call = call
        self.reader = sse.EventReader()
        self.sequence = 0
        self.started = False
        self.finished = False
        self.completion_id = ""
        self.created = 0
        self.model = ""
        self.text: list[str] = []
        self.finish_reason = "stop"
        self.usage: dict[str, Any] | None = None

    def _event(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return sse.named_event(kind, payload)

    def feed(self, data: bytes) -> bytes:
        return b"".join(self._rewrite(raw) for raw in self.reader.feed(data))

    def close(self) -> bytes:
        if self.finished:
            return b""
        return self._fail("the answer's stream ended before it was complete", "stream_truncated")

    def _ids(self) -> tuple[str, str]:
        return response_id(self.completion_id), message_item(self.completion_id, None, "")["id"]

    def _rewrite(self, raw: bytes) -> bytes:
        data = sse.data_of(raw)
        if self.finished:
            return b""
        if data is None:
            return raw  # a heartbeat: clients ignore comments, proxies see traffic
        if data == b"[DONE]":
            return self._complete()
        try:
            chunk = json.loads(data)
        except ValueError:
            return self._fail("the origin sent a malformed stream chunk", "stream_broken")
        if not isinstance(chunk, dict):
            return b""
        if isinstance(chunk.get("error"), dict):
            error = chunk["error"]
            return self._fail(str(error.get("message", "the answer failed")), str(error.get("code") or "stream_broken"))
        out = b""
        if not self.started:
            out = self._start(chunk)
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if text:
                self.text.append(text)
                _, item_id = self._ids()
                out += self._event("response.output_text.delta", item_id=item_id, output_index=0, content_index=0,
                                   delta=text, logprobs=[])
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return out

    def _start(self, chunk: dict[str, Any]) -> bytes:
        self.started = True
        self.completion_id = str(chunk.get("id", ""))
        self.created = int(chunk.get("created") or time.time())
        self.model = str(chunk.get("model", ""))
        shell = self.call.envelope(self.completion_id, self.created, self.model, "in_progress", [])
        item = message_item(self.completion_id, None, "in_progress")
        return (self._event("response.created", response=shell)
                + self._event("response.in_progress", response=shell)
                + self._event("response.output_item.added", output_index=0, item=item)
                + self._event("response.content_part.added", item_id=item["id"], output_index=0, content_index=0,
                              part={"type": "output_text", "text": "", "annotations": [], "logprobs": []}))

    def _complete(self) -> bytes:
        out = b"" if self.started else self._start({})
        self.finished = True
        text = "".join(self.text)
        status, incomplete = _FINISH.get(self.finish_reason, ("completed", None))
        item = message_item(self.completion_id, text, "completed" if status == "completed" else "incomplete")
        part = item["content"][0]
        final = self.call.envelope(self.completion_id, self.created, self.model, status, [item], _usage(self.usage),
                                   incomplete)
        return (out
                + self._event("response.output_text.done", item_id=item["id"], output_index=0, content_index=0,
                              text=text, logprobs=[])
                + self._event("response.content_part.done", item_id=item["id"], output_index=0, content_index=0,
                              part=part)
                + self._event("response.output_item.done", output_index=0, item=item)
                + self._event("response.completed" if status == "completed" else "response.incomplete",
                              response=final))

    def _fail(self, message: str, code: str) -> bytes:
        out = b"" if self.started else self._start({})
        self.finished = True
        item = message_item(self.completion_id, "".join(self.text), "incomplete")
        failed = self.call.envelope(self.completion_id, self.created, self.model, "failed", [item],
                                    _usage(self.usage), error={"code": code, "message": message})
        return (out + self._event("error", code=code, message=message, param=None)
                + self._event("response.failed", response=failed))

