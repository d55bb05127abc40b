"""Real HTTP servers on 127.0.0.1 for tests: an ASGI app under uvicorn in a background thread, plus
fakes of the third-party APIs eaves talks to (OpenAI-compatible chat completions, Cloudflare KV)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from eaves.stack import free_port


@contextlib.contextmanager
def serve(app: Any) -> Iterator[str]:
    """``app`` on a free 127.0.0.1 port for the duration of the block; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


# ---------------------------------------------------------------- OpenAI-compatible chat completions


@dataclass
class FakeOpenAI:
    """Answers /v1/chat/completions per a script of behaviours, one per call, then ``default``:
    ``ok``, ``429`` (with ``retry_after`` as its Retry-After), ``500``, ``503``, ``400``, ``broken`` (drops the
    connection mid-stream), ``error`` (an error event mid-stream), ``short`` (ends without [DONE])."""

    script: list[str] = field(default_factory=list)
    default: str = "ok"
    words: tuple[str, ...] = ("Hello", " from", " the", " fake", " upstream", ".")
    calls: list[dict[str, Any]] = field(default_factory=list)
    auth: list[str] = field(default_factory=list)
    retry_after: str = "0"

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/chat/completions", self.handle, methods=["POST"])])

    async def handle(self, request: Request) -> Response:
        payload = await request.json()
        self.calls.append(payload)
        self.auth.append(request.headers.get("authorization", ""))
        behaviour = self.script.pop(0) if self.script else self.default
        if behaviour == "429":
            return JSONResponse({"error": {"message": "slow down", "type": "rate_limit"}}, status_code=429,
                                headers={"retry-after": self.retry_after})
        if behaviour in ("500", "503"):
            return JSONResponse({"error": {"message": "overloaded"}}, status_code=int(behaviour))
        if behaviour == "400":
            return JSONResponse({"error": {"message": "bad model name"}}, status_code=400)
        if not payload.get("stream"):
            return JSONResponse({"id": "x", "object": "chat.completion", "created": 0, "model": payload["model"],
                                 "choices": [{"index": 0, "message": {"role": "assistant",
                                                                      "content": "".join(self.words)},
                                              "finish_reason": "stop"}],
                                 "usage": {"prompt_tokens": 9, "completion_tokens": len(self.words),
                                           "total_tokens": 9 + len(self.words)}})
        return StreamingResponse(self._stream(payload, behaviour), media_type="text/event-stream")

    async def _stream(self, payload: dict[str, Any], behaviour: str):  # type: ignore[no-untyped-def]
        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            body = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": payload["model"],
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            return b"data: " + json.dumps(body).encode() + b"\n\n"

        yield chunk({"role": "assistant", "content": ""})
        for index, word in enumerate(self.words):
            if index == 3 and behaviour == "broken":
                raise RuntimeError("fake upstream drops the connection")
            if index == 3 and behaviour == "error":
                yield b'data: {"error": {"message": "upstream model crashed"}}\n\n'
                return
            yield b": keep-alive\n\n" if index == 1 else b""
            yield chunk({"content": word})
        if behaviour == "short":
            return
        yield chunk({}, "stop")
        if (payload.get("stream_options") or {}).get("include_usage"):
            usage = {"prompt_tokens": 9, "completion_tokens": len(self.words), "total_tokens": 9 + len(self.words)}
            yield b"data: " + json.dumps({"id": "x", "object": "chat.completion.chunk", "created": 0,
                                          "model": payload["model"], "choices": [], "usage": usage}).encode() + b"\n\n"
        yield b"data: [DONE]\n\n"


# ---------------------------------------------------------------- Cloudflare Workers KV REST API


@dataclass
class FakeCloudflareKV:
    """The bulk write endpoint, checking each request against the documented shape
    (PUT, bearer token, JSON array of ≤ 10,000 {key, value, expiration_ttl?, metadata?, base64?},
    ≤ 100 MB) and answering with the v4 envelope. ``script`` items: ``ok``, ``429``, ``500``,
    ``403``, ``partial`` (reports the first key unsuccessful); a 429 carries ``retry_after``."""

    account: str = "acc123"
    namespace: str = "ns456"
    token: str = "tok-secret"
    script: list[str] = field(default_factory=list)
    store: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[list[dict[str, Any]]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    retry_after: str = "0"

    def app(self) -> Starlette:
        path = "/client/v4/accounts/{account}/storage/kv/namespaces/{namespace}/bulk"
        return Starlette(routes=[Route(path, self.bulk, methods=["PUT", "POST", "PATCH"])])

    def _problem(self, text: str, status: int = 400) -> JSONResponse:
        self.problems.append(text)
        return JSONResponse({"success": False, "errors": [{"code": 10001, "message": text}], "messages": [],
                             "result": None}, status_code=status)

    async def bulk(self, request: Request) -> Response:
        if request.method != "PUT":
            return self._problem(f"bulk write must be PUT, not {request.method}", 405)
        if (request.path_params["account"], request.path_params["namespace"]) != (self.account, self.namespace):
            return self._problem("unknown account or namespace", 404)
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse({"success": False, "errors": [{"code": 10000, "message": "Authentication error"}],
                                 "messages": [], "result": None}, status_code=403)
        if not request.headers.get("content-type", "").startswith("application/json"):
            return self._problem("content-type must be application/json")
        raw = await request.body()
        if len(raw) > 100_000_000:
            return self._problem("request over 100 MB", 413)
        pairs = json.loads(raw)
        if not isinstance(pairs, list) or not 1 <= len(pairs) <= 10_000:
            return self._problem("body must be an array of 1 to 10,000 pairs")
        allowed = {"key", "value", "expiration", "expiration_ttl", "metadata", "base64"}
        for pair in pairs:
            if not isinstance(pair, dict) or not isinstance(pair.get("key"), str) or \
                    not isinstance(pair.get("value"), str):
                return self._problem("each pair needs a string key and a string value")
            if set(pair) - allowed:
                return self._problem(f"unknown fields {sorted(set(pair) - allowed)}")
            if len(pair["key"].encode()) > 512:
                return self._problem("key over 512 bytes")
            ttl = pair.get("expiration_ttl")
            if ttl is not None and (not isinstance(ttl, int) or ttl < 60):
                return self._problem("expiration_ttl must be an integer ≥ 60")
            if "metadata" in pair and not isinstance(pair["metadata"], dict):
                return self._problem("metadata must be an object")
            if "base64" in pair and not isinstance(pair["base64"], bool):
                return self._problem("base64 must be a boolean")
        self.requests.append(pairs)
        behaviour = self.script.pop(0) if self.script else "ok"
        if behaviour == "429":
            return JSONResponse({"success": False, "errors": [{"code": 10013, "message": "rate limited"}],
                                 "messages": [], "result": None}, status_code=429,
                                headers={"retry-after": self.retry_after})
        if behaviour == "500":
            return JSONResponse({"success": False, "errors": [{"code": 10002, "message": "internal"}],
                                 "messages": [], "result": None}, status_code=500)
        if behaviour == "403":
            return JSONResponse({"success": False, "errors": [{"code": 10000, "message": "Authentication error"}],
                                 "messages": [], "result": None}, status_code=403)
        failed = [pairs[0]["key"]] if behaviour == "partial" else []
        for pair in pairs:
            if pair["key"] not in failed:
                self.store[pair["key"]] = pair
        return JSONResponse({"success": True, "errors": [], "messages": [],
                             "result": {"successful_key_count": len(pairs) - len(failed),
                                        "unsuccessful_keys": failed}})
