"""The origin service: signed chat completions in, full generation, the answer written back to the KV.

    POST /v1/chat/completions   only with the edge's signature (shared.signing); 401 otherwise
    GET  /healthz               liveness, and which generator and KV writer run
    GET  /metrics               Prometheus metrics (origin.metrics), summed over worker processes
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from origin import metrics
from origin.generators.base import GenerationError, GenerationRequest, Generator
from origin.writeback import AnswerWriter, KVAnswerWriter, expiration_for
from shared import signing, wire
from shared.kv import KVError

log = logging.getLogger("eaves.origin")


@dataclass
class OriginState:
    generator: Generator
    writer: AnswerWriter
    secret: bytes
    generation_timeout_s: float = 120.0
    max_body_bytes: int = 1024 * 1024
    max_prompt_chars: int = 64_000
    default_model: str = "eaves-default"
    clock: Any = time.time
    counters: dict[str, int] = field(default_factory=lambda: {"generations": 0, "writebacks": 0,
                                                                  "writeback_failures": 0})


def error(status: int, message: str, code: str, error_type: str = "invalid_request_error",
          headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": error_type, "code": code, "param": None}},
                        status_code=status, headers=headers)


async def chat_completions(request: Request) -> Response:
    state: OriginState = request.app.state.origin
    body = await request.body()
    try:
        signing.verify(state.secret, request.method, request.url.path, body, request.headers, state.clock())
    except signing.SignatureError as exc:
        return error(401, f"this origin only serves the eaves edge: {exc}", "invalid_signature",
                     "authentication_error", {"www-authenticate": 'EavesSignature realm="origin"'})
    if len(body) > state.max_body_bytes:
        return error(413, f"request body is over {state.max_body_bytes} bytes", "body_too_large")
    try:
        chat = wire.parse_chat_request(body, default_model=state.default_model,
                                       max_prompt_chars=state.max_prompt_chars)
    except wire.WireError as exc:
        return error(400, str(exc), "invalid_request")

    gen_request = GenerationRequest(model=chat.model, messages=chat.raw["messages"], prompt=chat.prompt,
                                    system=chat.system, max_tokens=chat.max_tokens or 256,
                                    temperature=chat.temperature)
    started = time.perf_counter()
    try:
        text, completion_tokens = await asyncio.wait_for(_collect(state.generator, gen_request),
                                                         state.generation_timeout_s)
    except TimeoutError:
        return error(504, f"generation took longer than {state.generation_timeout_s:g}s", "generation_timeout",
                     "upstream_timeout")
    except GenerationError as exc:
        log.warning("generation failed: %s", exc)
        return error(502, f"the model failed: {exc}", "generation_failed", "upstream_error")
    state.counters["generations"] += 1
    elapsed = time.perf_counter() - started

    prompt_tokens = state.generator.count_prompt_tokens(gen_request)
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
             "total_tokens": prompt_tokens + completion_tokens}
    metrics.generation(state.generator.name, usage, elapsed)
    payload = wire.completion_body(text, model=chat.model, usage=usage)
    encoded = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    headers = {"x-eaves-generator": state.generator.name, "x-eaves-generation-ms": f"{elapsed * 1000:.1f}"}
    headers["x-eaves-writeback"] = await _write_back(state, request.headers, encoded)
    metrics.writeback(headers["x-eaves-writeback"])
    return Response(encoded, media_type="application/json", headers=headers)


async def _collect(generator: Generator, request: GenerationRequest) -> tuple[str, int]:
    parts: list[str] = []
    tokens = 0
    async for piece in generator.stream(request):
        parts.append(piece.text)
        tokens += piece.tokens
    return "".join(parts), tokens


async def _write_back(state: OriginState, headers: Any, body: bytes) -> str:
    key = headers.get(wire.CACHE_KEY_HEADER)
    if not key:
        return "skipped"
    try:
        ttl = int(headers.get(wire.CACHE_TTL_HEADER, "0"))
        stale = int(headers.get(wire.CACHE_STALE_HEADER, "0"))
    except ValueError:
        return "skipped"
    if ttl <= 0:
        return "skipped"
    now = state.clock()
    answer = wire.CachedAnswer(body, now, now + ttl, headers.get(wire.CACHE_INTENT_HEADER, ""))
    try:
        await state.writer.write(key, answer, expiration_for(ttl, stale))
    except (KVError, OSError) as exc:
        # The answer is still good for this caller; only the next identical request pays again.
        state.counters["writeback_failures"] += 1
        log.error("write-back of %s failed: %s", key, exc)
        return "failed"
    state.counters["writebacks"] += 1
    return "written"


async def healthz(request: Request) -> Response:
    state: OriginState = request.app.state.origin
    return JSONResponse({"status": "ok", "generator": state.generator.name, "writer": state.writer.name,
                         **state.counters})


def build_app(state: OriginState) -> Starlette:
    app = Starlette(routes=[Route("/v1/chat/completions", chat_completions, methods=["POST"]),
                            Route("/healthz", healthz, methods=["GET"]),
                            Route("/metrics", metrics.metrics_endpoint, methods=["GET"])],
                    middleware=[Middleware(metrics.ObserveRequests)])
    app.state.origin = state
    return app


def generator_from_env(environ: dict[str, str]) -> Generator:
    from origin.generators.simulator import SimulatedGenerator

    kind = environ.get("EAVES_GENERATOR", "simulator")
    if kind == "simulator":
        return SimulatedGenerator(
            ttft_s=float(environ.get("EAVES_SIM_TTFT_MS", "50")) / 1000,
            tokens_per_s=float(environ.get("EAVES_SIM_TOKENS_PER_S", "200")),
            answer_tokens=int(environ.get("EAVES_SIM_ANSWER_TOKENS", "32")),
            fail_rate=float(environ.get("EAVES_SIM_FAIL_RATE", "0")),
        )
    raise ValueError(f"EAVES_GENERATOR={kind!r} is not a known generator (simulator)")


def create_app() -> Starlette:
    """uvicorn factory, configured from the environment (EAVES_DATA_DIR, EAVES_GENERATOR, ...)."""
    from shared.kv_lmdb import AsyncLmdbKV, LmdbKV
    from shared.local_stack import LocalStack

    environ = dict(os.environ)
    stack = LocalStack(Path(environ.get("EAVES_DATA_DIR", ".eaves")))
    state = OriginState(
        generator=generator_from_env(environ),
        writer=KVAnswerWriter(AsyncLmdbKV(LmdbKV(stack.kv_path)), name="lmdb"),
        secret=stack.origin_secret(),
        generation_timeout_s=float(environ.get("EAVES_GENERATION_TIMEOUT_S", "120")),
    )
    return build_app(state)
