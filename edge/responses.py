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
``user``/``safety_identifier``, ``stream``; function ``tools`` with ``tool_choice`` and
``parallel_tool_calls``, and ``function_call``/``function_call_output`` input items (chat's tool calls and
tool messages; the origin forwards them to a generator that can call tools, or refuses them); ``metadata``
and hints that cannot change the answer are accepted. Refused with a 400 naming the field (never answered
as if the field were absent): anything that needs state this edge does not keep (``previous_response_id``,
``conversation``, ``background``, ``prompt``), built-in tools, non-text input, and fields it does not know.
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
                    "stream_options", "truncation"})
_FORWARDED = frozenset({"model", "input", "instructions", "max_output_tokens", "temperature", "top_p", "text",
                        "reasoning", "user", "safety_identifier", "stream", "tools", "tool_choice", "include",
                        "parallel_tool_calls"})
# Fields whose presence (with a value) asks for something this edge cannot do, and why.
_REFUSED = {
    "previous_response_id": "this edge stores no responses; send the whole conversation in 'input'",
    "conversation": "this edge stores no conversations; send the whole conversation in 'input'",
    "background": "background responses are not served; use 'Prefer: respond-async' on /v1/chat/completions",
    "prompt": "stored prompt templates are not served; send the text in 'instructions' and 'input'",
    "top_logprobs": "log probabilities are not served",
    "max_tool_calls": "chat completions, which the origin speaks, have no limit on tool calls",
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


def _string(item: dict[str, Any], name: str, where: str) -> str:
    value = item.get(name)
    if not isinstance(value, str) or not value:
        raise _bad(f"{where}.{name} must be a non-empty string", f"{where}.{name}")
    return value


def _messages(items: list[Any]) -> list[dict[str, Any]]:
    """Input items as chat messages; consecutive function calls become one assistant turn, as chat has them."""
    messages: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        where = f"input[{i}]"
        kind = item.get("type", "message") if isinstance(item, dict) else None
        if kind == "function_call":
            arguments = item.get("arguments", "")
            if not isinstance(arguments, str):
                raise _bad(f"{where}.arguments must be a string", f"{where}.arguments")
            call = {"id": _string(item, "call_id", where), "type": "function",
                    "function": {"name": _string(item, "name", where), "arguments": arguments}}
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            if isinstance(output, list):
                output = _text_parts(output, f"{where}.output")
            if not isinstance(output, str | list):
                raise _bad(f"{where}.output must be a string or a list of text parts", f"{where}.output")
            messages.append({"role": "tool", "tool_call_id": _string(item, "call_id", where), "content": output})
        else:
            messages.append(_message(item, where))
    return messages


def _text_parts(content: list[Any], where: str) -> list[dict[str, Any]]:
    parts = []
    for j, part in enumerate(content):
        at = f"{where}[{j}]"
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise _bad(f"{at} must be an object with a 'type'", at)
        if part["type"] not in _TEXT_PARTS:
            raise _bad(f"{at} has type {part['type']!r}; this edge serves text only (input_text, output_text)",
                       f"{at}.type")
        if not isinstance(part.get("text"), str):
            raise _bad(f"{at}.text must be a string", f"{at}.text")
        parts.append({"type": "text", "text": part["text"]})
    return parts


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise _bad("'tools' must be a list", "tools")
    out = []
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(tool, dict) or tool.get("type") != "function":
            kind = tool.get("type") if isinstance(tool, dict) else None
            raise _bad(f"{where} is the built-in tool {kind!r}; this edge serves function tools only",
                       f"{where}.type")
        _string(tool, "name", where)
        out.append({"type": "function", "function": {k: tool[k] for k in ("name", "description", "parameters",
                                                                           "strict") if k in tool}})
    return out


def _tool_choice(choice: Any, has_tools: bool) -> Any:
    if choice in (None, "auto", "none"):
        return choice
    if not has_tools:
        raise _bad("'tool_choice' asks for a tool call, but no 'tools' were given", "tool_choice")
    if choice == "required":
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise _bad("'tool_choice' must be auto, none, required or {\"type\": \"function\", \"name\": ...}",
               "tool_choice")


def _message(item: Any, where: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise _bad(f"{where} must be an object", where)
    kind = item.get("type", "message")
    if kind != "message":
        raise _bad(f"{where} is a {kind!r} item; this edge serves messages and function calls only (no "
                   "reasoning items or item references)", f"{where}.type")
    role = item.get("role")
    if not isinstance(role, str) or role not in _ROLES:  # a list or an object is unhashable: check the type first
        raise _bad(f"{where}.role must be one of {', '.join(sorted(_ROLES))}", f"{where}.role")
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise _bad(f"{where}.content must be a string or a list of text parts", f"{where}.content")
    return {"role": role, "content": _text_parts(content, f"{where}.content")}


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
        messages.extend(_messages(source))
    else:
        raise _bad("'input' is required: a string or a non-empty list of message items", "input")
    if not any(m["role"] == "user" for m in messages):
        raise _bad("'input' must contain a user message", "input")

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
    # The end user under the name the caller gave it, so that an error about it (a wrong type, invalid, or not
    # the JWT's user) names the field the caller sent; chat checks both and reads `user` first, as this endpoint.
    for name in ("user", "safety_identifier"):
        if request.get(name) is not None:
            chat[name] = request[name]
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
    tools = request.get("tools")
    if not _absent(tools):
        chat["tools"] = _tools(tools)
        if request.get("parallel_tool_calls") is not None:
            chat["parallel_tool_calls"] = request["parallel_tool_calls"]
    choice = _tool_choice(request.get("tool_choice"), "tools" in chat)
    if choice is not None and "tools" in chat:
        chat["tool_choice"] = choice
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
        request = wire.loads_json(body)  # every way json.loads fails on a hostile body is a WireError
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
            "model": model, "output": output, "parallel_tool_calls": r.get("parallel_tool_calls", True) is not False,
            "previous_response_id": None,
            "reasoning": {"effort": None, "summary": None}, "service_tier": "default", "store": False,
            "temperature": r.get("temperature", 1.0), "text": text, "tool_choice": r.get("tool_choice") or "auto",
            "tools": r.get("tools") or [],
            "top_p": r.get("top_p", 1.0), "truncation": "disabled", "usage": usage,
            "user": r.get("user"), "metadata": r.get("metadata") or {},
        }

    def response_object(self, completion: dict[str, Any]) -> dict[str, Any]:
        choice = (completion.get("choices") or [{}])[0]
        message = choice.get("message") or {}
        reason = choice.get("finish_reason")
        status, incomplete = _FINISH.get(reason if isinstance(reason, str) else "stop", ("completed", None))
        completion_id = str(completion.get("id", ""))
        item_status = "completed" if status == "completed" else "incomplete"
        calls = message.get("tool_calls") or []
        output = [function_call_item(call.get("id", ""), (call.get("function") or {}).get("name", ""),
                                     (call.get("function") or {}).get("arguments", ""), item_status)
                  for call in calls if isinstance(call, dict)]
        if message.get("content") or not output:
            output.insert(0, message_item(completion_id, message.get("content") or "", item_status))
        return self.envelope(completion_id, int(completion.get("created") or time.time()),
                             str(completion.get("model", "")), status, output, _usage(completion.get("usage")),
                             incomplete)


def response_id(completion_id: str) -> str:
    # Derived from the completion's id, so a replayed answer keeps its ids.
    return "resp_" + completion_id.removeprefix("chatcmpl-")


def message_item(completion_id: str, text: str | None, status: str) -> dict[str, Any]:
    content = [] if text is None else [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
    return {"type": "message", "id": "msg_" + completion_id.removeprefix("chatcmpl-"), "status": status,
            "role": "assistant", "content": content}


def function_call_item(call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {"type": "function_call", "id": "fc_" + call_id.removeprefix("call_"), "call_id": call_id, "name": name,
            "arguments": arguments, "status": status}


@dataclass
class _Item:
    """One output item as it streams: the message's text, or one function call's name and arguments."""

    kind: str  # "message" | "function_call"
    index: int  # its output_index
    item_id: str
    call_id: str = ""
    name: str = ""
    parts: list[str] = field(default_factory=list)

    def final(self, completion_id: str, status: str) -> dict[str, Any]:
        if self.kind == "message":
            return message_item(completion_id, "".join(self.parts), status)
        return function_call_item(self.call_id, self.name, "".join(self.parts), status)


class EventWriter:
    """A chat-completions SSE stream rewritten, chunk by chunk, as the Responses streaming events.

    created → in_progress → for each output item as it first appears (the message's text, each tool call):
    output_item.added (+ content_part.added) → output_text.delta… / function_call_arguments.delta…; at the
    end each item's .done events in order, then completed (or incomplete). An error event in the chat stream
    becomes ``error`` then ``response.failed``. Heartbeat comments pass through.
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
        self.items: list[_Item] = []
        self.message: _Item | None = None
        self.calls: dict[int, _Item] = {}
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
            if delta.get("content"):
                out += self._text(delta["content"])
            for call in delta.get("tool_calls") or []:
                if isinstance(call, dict):
                    out += self._tool_call(call)
            if isinstance(choice.get("finish_reason"), str):
                self.finish_reason = choice["finish_reason"]
        return out

    def _start(self, chunk: dict[str, Any]) -> bytes:
        self.started = True
        self.completion_id = str(chunk.get("id", ""))
        self.created = int(chunk.get("created") or time.time())
        self.model = str(chunk.get("model", ""))
        shell = self.call.envelope(self.completion_id, self.created, self.model, "in_progress", [])
        return self._event("response.created", response=shell) + self._event("response.in_progress", response=shell)

    def _text(self, text: str) -> bytes:
        out = b""
        if self.message is None:
            item = message_item(self.completion_id, None, "in_progress")
            self.message = _Item("message", len(self.items), item["id"])
            self.items.append(self.message)
            out = (self._event("response.output_item.added", output_index=self.message.index, item=item)
                   + self._event("response.content_part.added", item_id=item["id"], output_index=self.message.index,
                                 content_index=0,
                                 part={"type": "output_text", "text": "", "annotations": [], "logprobs": []}))
        self.message.parts.append(text)
        return out + self._event("response.output_text.delta", item_id=self.message.item_id,
                                 output_index=self.message.index, content_index=0, delta=text, logprobs=[])

    def _tool_call(self, call: dict[str, Any]) -> bytes:
        out = b""
        function = call.get("function") or {}
        position = call.get("index", len(self.calls))
        item = self.calls.get(position)
        if item is None:
            call_id = str(call.get("id") or f"call_{self.completion_id}_{position}")
            opened = function_call_item(call_id, str(function.get("name") or ""), "", "in_progress")
            item = _Item("function_call", len(self.items), opened["id"], call_id, opened["name"])
            self.calls[position] = item
            self.items.append(item)
            out = self._event("response.output_item.added", output_index=item.index, item=opened)
        elif function.get("name"):
            item.name += function["name"]
        arguments = function.get("arguments")
        if arguments:
            item.parts.append(arguments)
            out += self._event("response.function_call_arguments.delta", item_id=item.item_id,
                               output_index=item.index, delta=arguments)
        return out

    def _complete(self) -> bytes:
        out = b"" if self.started else self._start({})
        self.finished = True
        if not self.items:
            out += self._text("")  # an answer always has an output item, as OpenAI's always do
        status, incomplete = _FINISH.get(self.finish_reason, ("completed", None))
        item_status = "completed" if status == "completed" else "incomplete"
        output = []
        for item in self.items:
            final = item.final(self.completion_id, item_status)
            output.append(final)
            if item.kind == "message":
                text = "".join(item.parts)
                out += (self._event("response.output_text.done", item_id=item.item_id, output_index=item.index,
                                    content_index=0, text=text, logprobs=[])
                        + self._event("response.content_part.done", item_id=item.item_id, output_index=item.index,
                                      content_index=0, part=final["content"][0]))
            else:
                out += self._event("response.function_call_arguments.done", item_id=item.item_id,
                                   output_index=item.index, name=item.name, arguments=final["arguments"])
            out += self._event("response.output_item.done", output_index=item.index, item=final)
        final_response = self.call.envelope(self.completion_id, self.created, self.model, status, output,
                                            _usage(self.usage), incomplete)
        return out + self._event("response.completed" if status == "completed" else "response.incomplete",
                                 response=final_response)

    def _fail(self, message: str, code: str) -> bytes:
        out = b"" if self.started else self._start({})
        self.finished = True
        output = [item.final(self.completion_id, "incomplete") for item in self.items]
        failed = self.call.envelope(self.completion_id, self.created, self.model, "failed", output,
                                    _usage(self.usage), error={"code": code, "message": message})
        return (out + self._event("error", code=code, message=message, param=None)
                + self._event("response.failed", response=failed))
