"""Wire types both sides speak: the OpenAI chat-completions request as the edge validates it,
the completion it returns, the headers the edge and the origin exchange, the cached-answer record."""

from __future__ import annotations

import json
import math
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from shared.cache_keys import InvalidUser, validate_user

# Headers the edge sets for clients.
ROUTE_HEADER = "x-edge-route"  # hit | stale | miss | edge | blocked | fallback | async
INTENT_HEADER = "x-edge-intent"
CACHE_STATUS_HEADER = "x-edge-cache-key"
REQUEST_ID_HEADER = "x-request-id"
RUNTIME_HEADER = "x-edge-runtime"  # cpython | pyodide | memory: which adapter served the response

SCOPE_HEADER = "x-edge-scope"  # shared | user | none: who may be served this answer from the cache
FALLBACK_REASON_HEADER = "x-edge-fallback-reason"  # why the origin's answer was replaced (metrics count it)

# Headers the edge sends the origin (inside the signature).
TENANT_HEADER = "x-eaves-tenant"
USER_HEADER = "x-eaves-user"  # the end user, when known and the answer is not stored for others
CACHE_KEY_HEADER = "x-eaves-cache-key"
CACHE_TTL_HEADER = "x-eaves-cache-ttl"  # fresh seconds; absent = do not write back
CACHE_STALE_HEADER = "x-eaves-cache-stale"  # seconds past ttl it may be served stale while refreshing
CACHE_KEEP_HEADER = "x-eaves-cache-keep"  # seconds past ttl it may be served if the origin fails
CACHE_INTENT_HEADER = "x-eaves-intent"
# What the origin did with the answer (pending, queued, skipped, ...): "refused:<reason>" when it would not keep it.
WRITEBACK_HEADER = "x-eaves-writeback"

# A client's x-request-id is echoed, forwarded to the origin and logged: only a bounded, plain token is
# taken as it is; anything else is replaced by a generated id (the request still goes through).
MAX_REQUEST_ID_CHARS = 128
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:+/=@-]+")


def clean_request_id(value: str | None, max_chars: int = MAX_REQUEST_ID_CHARS) -> str | None:
    """``value`` when it is a usable request id, else None (the caller generates one). The origin allows a
    little more, for the edge's own suffixes (``<id>-refresh``)."""
    return value if value and len(value) <= max_chars and _REQUEST_ID.fullmatch(value) else None


ROLES = ("system", "developer", "user", "assistant", "tool", "function")


class WireError(ValueError):
    """A request body that is not a valid chat completion request; ``param`` names the field."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    prompt: str  # the last user message: what the edge classifies and keys on
    system: str  # system/developer messages, joined
    history: str  # earlier turns, joined: part of the key, since they change the answer
    stream: bool
    max_tokens: int | None
    temperature: float | None
    raw: dict[str, Any] = field(repr=False, compare=False)
    user: str = ""  # the request's end user (``user``, else ``safety_identifier``), validated; "" when absent
    user_field: str = "user"  # which of the two named it, for an error about it


# ---------------------------------------------------------------- JSON from strangers

MAX_TOKENS_LIMIT = 1_000_000
MAX_JSON_DEPTH = 64  # an OpenAI request nests about 6 deep; tool schemas a little more
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def _too_deep(raw: bytes, limit: int) -> bool:
    """Whether arrays and objects nest more than ``limit`` deep, decided before parsing: json.loads
    recurses in C, and in Pyodide a deep enough body exhausts the WebAssembly stack, a fatal error rather
    than a RecursionError. First over the brackets alone (a C-speed ``translate``, then a loop that stops
    at the limit); brackets inside strings can only make that count higher, so only a body it flags is
    scanned again with strings skipped."""
    brackets = raw.translate(None, _NOT_BRACKETS)
    if len(brackets) <= limit or not _exceeds(brackets, limit):
        return False
    return _exceeds(raw, limit, strings=True)


def _exceeds(data: bytes, limit: int, *, strings: bool = False) -> bool:
    depth = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x5B or byte == 0x7B:  # [ {
            depth += 1
            if depth > limit:
                return True
        elif byte == 0x5D or byte == 0x7D:  # ] }
            depth -= 1
        elif strings and byte == 0x22:
            in_string = True
    return False


def _lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_lone_surrogate(k) or _lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_lone_surrogate(item) for item in value)
    return False


def loads_json(body: bytes | str) -> Any:
    """JSON from an untrusted sender, with every way ``json.loads`` can fail turned into a ``WireError``.

    ``json.loads`` alone raises RecursionError on deep nesting, a bare ValueError past 4,300 integer
    digits (CPython's int-to-str guard), and accepts lone UTF-16 surrogates (``\\ud800``, or raw bytes ED A0 80 via its
    ``surrogatepass`` decoding) that then crash whatever encodes the text. The slower checks run only
    when a C-speed look at the bytes says they could find something (more brackets than the depth limit;
    a ``\\ud8xx``-style escape), so a typical body pays for neither.
    """
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else bytes(body)
    if _too_deep(raw, MAX_JSON_DEPTH):
        raise WireError(f"the body nests arrays and objects more than {MAX_JSON_DEPTH} levels deep")
    try:
        text = raw.decode("utf-8")  # strict: refuses encoded surrogates and other invalid UTF-8
    except UnicodeDecodeError as exc:
        raise WireError(f"request body is not valid JSON: it is not UTF-8 (byte {exc.start})") from exc
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise WireError(f"request body is not valid JSON: {exc}") from exc
    except RecursionError as exc:  # not reached past the depth check; kept so a str body can never crash
        raise WireError(f"the body nests arrays and objects more than {MAX_JSON_DEPTH} levels deep") from exc
    except WireError:
        raise
    except ValueError as exc:  # int(): "Exceeds the limit (4300 digits) for integer string conversion"
        raise WireError("the body holds an integer too long to read (over 4,300 digits); send numbers of a "
                        "sensible size") from exc
    if (b"\\ud" in raw or b"\\uD" in raw) and _SURROGATE_ESCAPE.search(raw) and _lone_surrogate(data):
        raise WireError("the body holds a lone UTF-16 surrogate escape (\\ud800-\\udfff without its pair); "
                        "send valid Unicode text")
    return data


def _no_constant(name: str) -> Any:
    raise WireError(f"{name} is not valid JSON; send numbers as finite values")


def _text_of(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    if isinstance(content, list):
        parts = []
        for i, part in enumerate(content):
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                raise WireError(f"{where}.content[{i}] must be an object with a 'type'", f"{where}.content")
            if part["type"] == "text":
                if not isinstance(part.get("text"), str):
                    raise WireError(f"{where}.content[{i}].text must be a string", f"{where}.content")
                parts.append(part["text"])
            else:
                raise WireError(f"{where}.content[{i}] has type {part['type']!r}; only text parts are "
                                "supported", f"{where}.content")
        return "\n".join(parts)
    raise WireError(f"{where}.content must be a string or a list of text parts", f"{where}.content")


def parse_chat_request(body: bytes, *, default_model: str, max_prompt_chars: int,
                       max_messages: int = 256) -> ChatRequest:
    data = loads_json(body)
    if not isinstance(data, dict):
        raise WireError("request body must be a JSON object")

    model = data.get("model", default_model)
    if not isinstance(model, str) or not model.strip():
        raise WireError("'model' must be a non-empty string", "model")

    messages = data.get("messages")
    if messages is None:
        raise WireError("'messages' is required", "messages")
    if not isinstance(messages, list) or not messages:
        raise WireError("'messages' must be a non-empty array", "messages")
    if len(messages) > max_messages:
        raise WireError(f"'messages' has {len(messages)} items; at most {max_messages} are allowed", "messages")

    system: list[str] = []
    turns: list[tuple[str, str]] = []
    total = 0
    last_user = -1
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise WireError(f"{where} must be an object", "messages")
        role = message.get("role")
        if role not in ROLES:
            raise WireError(f"{where}.role must be one of {', '.join(ROLES)}", "messages")
        text = _text_of(message.get("content"), where)
        total += len(text)
        if role in ("system", "developer"):
            system.append(text)
        else:
            if role == "user":
                last_user = len(turns)
            turns.append((role, text))
    if last_user < 0:
        raise WireError("'messages' must contain a user message", "messages")
    prompt = turns[last_user][1]
    if not prompt.strip():
        raise WireError("the last user message is empty", "messages")
    if total > max_prompt_chars:
        raise WireError(f"the messages hold {total} characters; this edge allows at most {max_prompt_chars}",
                        "messages")

    stream = data.get("stream", False)
    if not isinstance(stream, bool):
        raise WireError("'stream' must be true or false", "stream")
    max_tokens = data.get("max_completion_tokens", data.get("max_tokens"))
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int)
                                   or not 1 <= max_tokens <= MAX_TOKENS_LIMIT):
        # Bounded: a 4,000-digit count would overflow the model's C int and fail at the origin as a 5xx.
        raise WireError(f"'max_tokens' must be a positive integer of at most {MAX_TOKENS_LIMIT}", "max_tokens")
    temperature = data.get("temperature")
    if temperature is not None:
        if (isinstance(temperature, bool) or not isinstance(temperature, int | float)
                or not math.isfinite(temperature) or not 0 <= temperature <= 2):
            raise WireError("'temperature' must be a number between 0 and 2", "temperature")
        temperature = float(temperature)
    for name, kind in (("user", str), ("safety_identifier", str), ("n", int), ("top_p", (int, float)),
                       ("stop", (str, list))):
        if name in data and data[name] is not None and not isinstance(data[name], kind):
            raise WireError(f"'{name}' has the wrong type", name)
    if data.get("n") not in (None, 1):
        raise WireError("only 'n': 1 is supported", "n")
    # The end user: OpenAI's `user`, or `safety_identifier`, which OpenAI now asks for in its place (as on
    # /v1/responses); `user` wins when both are given. Either is checked under its own name.
    field = "user" if data.get("user") else "safety_identifier"
    user = data.get(field) or ""
    if user:
        try:
            validate_user(user)
        except InvalidUser as exc:
            raise WireError(f"'{field}' is not valid: {exc}", field) from exc

    history = "\x1e".join(f"{role}:{text}" for role, text in turns[:last_user] + turns[last_user + 1:])
    return ChatRequest(model=model, prompt=prompt, system="\n".join(system), history=history,
                       stream=stream, max_tokens=max_tokens, temperature=temperature, raw=data, user=user,
                       user_field=field)


def completion_body(content: str, *, model: str, usage: dict[str, Any] | None = None,
                    completion_id: str | None = None, created: int | None = None,
                    finish_reason: str = "stop") -> dict[str, Any]:
    return {
        "id": completion_id or f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": created if created is not None else int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "finish_reason": finish_reason}],
        "usage": usage or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


def answer_text(completion: dict[str, Any]) -> str:
    """The assistant text of a completion body, or raise WireError."""
    try:
        content = completion["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise WireError("completion has no choices[0].message.content") from exc
    if not isinstance(content, str):
        raise WireError("completion content is not a string")
    return content


# ---------------------------------------------------------------- cached answers

# Decoded answers by their body's identity (CachedAnswer.from_kv): building one costs ~1.3 µs of a ~100 µs
# hit. Bounded in count and body size; a body held here is also what the KV adapter remembers, not a copy.
_RECENT_ANSWER_COUNT = 1024
_RECENT_ANSWER_BYTES = 64 * 1024
_RECENT_ANSWERS: dict[int, tuple[bytes, dict[str, Any], CachedAnswer]] = {}


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """What the KV holds under an answer key: the completion body as sent, plus freshness metadata.

    The body is stored ready to send, so a hit costs one KV read and no JSON work.
    Metadata (≤ 1 KiB, Workers KV's limit) carries what the edge needs without parsing the body.
    """

    body: bytes
    created: float
    fresh_until: float
    intent: str = ""
    stale_until: float = 0.0  # serve stale while one refresh runs (stale-while-revalidate) until then
    keep_until: float = 0.0  # serve only when the origin fails (stale-if-error) until then

    def __post_init__(self) -> None:
        # Each deadline is at least the one before it, so freshness checks need no special cases.
        object.__setattr__(self, "stale_until", max(self.stale_until, self.fresh_until))
        object.__setattr__(self, "keep_until", max(self.keep_until, self.stale_until))

    def metadata(self) -> dict[str, Any]:
        return {"c": round(self.created, 3), "f": round(self.fresh_until, 3), "s": round(self.stale_until, 3),
                "k": round(self.keep_until, 3), "i": self.intent[:64]}

    @classmethod
    def from_kv(cls, body: bytes, metadata: dict[str, Any] | None) -> CachedAnswer | None:
        """The answer a KV entry holds, or None for an entry that is not one (an older schema: a miss)."""
        if not metadata:
            return None
        # The same entry read again: a KV that hands out the same (immutable) body object for an unchanged
        # entry (the emulator's LMDB KV does) gets the answer decoded last time, when the metadata is equal
        # too. The answer is a function of exactly these two, so this cannot differ from decoding again.
        if type(body) is bytes:
            recent = _RECENT_ANSWERS.get(id(body))
            if recent is not None and recent[0] is body and recent[1] == metadata:
                return recent[2]
        try:
            answer = cls(body, float(metadata["c"]), float(metadata["f"]), str(metadata.get("i", "")),
                         float(metadata.get("s", 0.0)), float(metadata.get("k", 0.0)))
        except (KeyError, TypeError, ValueError):
            return None  # an entry from an older schema is a miss, never an error
        if type(body) is bytes and len(body) <= _RECENT_ANSWER_BYTES:
            if len(_RECENT_ANSWERS) >= _RECENT_ANSWER_COUNT:
                _RECENT_ANSWERS.clear()
            # The body itself is kept (so its id cannot be reused by another object while remembered), and a
            # copy of the metadata (so a caller changing its own dict cannot change what is compared).
            _RECENT_ANSWERS[id(body)] = (body, dict(metadata), answer)
        return answer
