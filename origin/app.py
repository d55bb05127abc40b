"""The origin service: signed chat completions in, full generation, the answer written back to the KV.

    POST /v1/chat/completions   only with the edge's signature (shared.signing), each signed request
                                once (origin.replay); 401 otherwise, decided before the body is read.
                                ``stream: true`` → OpenAI-format SSE as the model produces it;
                                with a signed job header → 202 at once, generated in the background.
                                ``tools`` → forwarded by a generator that can call tools, else a 400.
    GET  /v1/models[/{id}]      the models this origin answers to (signed, like the chat route)
    GET  /healthz               liveness and which generator and KV writer run; the totals only with
                                the metrics token (``Authorization: Bearer <token>``)
    GET  /metrics               Prometheus metrics (origin.metrics), summed over worker processes;
                                metrics token required

Identical requests in flight share one generation (``origin.flights``); the finished answer is
stored once under the edge's cache key, the same bytes whether it was streamed or not.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from origin import jobs, metrics
from origin.accounting import Prices, Totals, usage_block
from origin.flights import Flight, Flights, request_key
from origin.generators.base import TOOL_FIELDS, GenerationError, GenerationRequest, Generator
from origin.replay import MemoryReplayGuard, ReplayGuard
from origin.writeback import KVWriter, expiration_for, write_answer
from shared import cache_keys, signing, sse, wire
from shared.kv import KVError
from shared.local_stack import bearer_matches

log = logging.getLogger("eaves.origin")


@dataclass
class OriginState:
    generator: Generator
    writer: KVWriter
    secret: bytes
    generation_timeout_s: float = 120.0
    max_body_bytes: int = 1024 * 1024
    max_prompt_chars: int = 64_000
    default_model: str = "eaves-default"
    default_max_tokens: int = 256
    prices: Prices = field(default_factory=Prices)
    clock: Any = time.time
    flights: Flights = field(default_factory=Flights)
    totals: Totals = field(default_factory=Totals)
    background: set[asyncio.Task[Any]] = field(default_factory=set)
    started: int = field(default_factory=lambda: int(time.time()))  # the models' "created"
    replay: ReplayGuard = field(default_factory=MemoryReplayGuard)
    metrics_token: str = ""  # empty: /metrics and /healthz's totals are served to nobody

    @property
    def counters(self) -> dict[str, Any]:
        return self.totals.snapshot()

    def defer(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self.background.add(task)
        task.add_done_callback(self.background.discard)


# Request fields that change how a model samples, passed on to generators that can honour them (the
# OpenAI-compatible one). They are all in the edge's cache key, so each combination has its own answer.
SAMPLING = ("top_p", "seed", "presence_penalty", "frequency_penalty", "logit_bias", "response_format")


def error(status: int, message: str, code: str, error_type: str = "invalid_request_error",
          headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": error_type, "code": code, "param": None}},
                        status_code=status, headers=headers)


@dataclass(frozen=True, slots=True)
class WriteBack:
    key: str
    ttl_s: int
    stale_s: int
    keep_s: int  # how long past fresh a stale answer may still stand in for a failed origin
    intent: str

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> WriteBack | None:
        """The signed write-back instruction, or None when there is none; raises ``ValueError`` for a key
        outside the asker's own namespace (the tenant's, and for a user key that end user's)."""
        key = headers.get(wire.CACHE_KEY_HEADER)
        if not key:
            return None
        check_key_owner(key, headers.get(wire.TENANT_HEADER, ""), headers.get(wire.USER_HEADER, ""))
        try:
            ttl = int(headers.get(wire.CACHE_TTL_HEADER, "0"))
            stale = max(0, int(headers.get(wire.CACHE_STALE_HEADER, "0")))
            keep = max(0, int(headers.get(wire.CACHE_KEEP_HEADER, "0")))
        except ValueError:
            return None
        return cls(key, ttl, stale, keep, headers.get(wire.CACHE_INTENT_HEADER, "")) if ttl > 0 else None


def check_key_owner(key: str, tenant: str, user: str) -> None:
    """A check at the writer, beside the key's construction at the edge: an answer is only ever written
    where this request's own tenant (and, for user scope, its own end user) would read it."""
    try:
        owner = cache_keys.user_key(tenant, user, "") if cache_keys.key_scope(key) == "user" \
            else cache_keys.shared_key(tenant, "")
    except (cache_keys.InvalidTenant, cache_keys.InvalidUser) as exc:
        raise ValueError(f"the cache key's owner is not valid: {exc}") from exc
    if not key.startswith(owner) or len(key) == len(owner):
        raise ValueError("the cache key is outside the asking tenant's (or end user's) namespace")


def _unsigned(exc: Exception) -> JSONResponse:
    return error(401, f"this origin only serves the eaves edge: {exc}", "invalid_signature",
                 "authentication_error", {"www-authenticate": 'EavesSignature realm="origin"'})


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it passes ``limit`` bytes (declared or not): the rest is never read."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def _admit(state: OriginState, request: Request) -> bytes | Response:
    """The signed body, or the refusal. Everything that can be judged from the headers is judged before a
    byte of the body is read, and the body is read only up to the size limit."""
    too_large = error(413, f"request body is over {state.max_body_bytes} bytes", "body_too_large")
    try:
        signing.check_headers(request.headers, state.clock())
    except signing.SignatureError as exc:
        return _unsigned(exc)
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit() or not declared.isascii():
            return error(400, "Content-Length must be a decimal number of bytes", "invalid_content_length")
        if int(declared) > state.max_body_bytes:
            return too_large
    body = await _read_body(request, state.max_body_bytes)
    if body is None:
        return too_large
    try:
        sent, nonce = signing.verify(state.secret, request.method, request.url.path, body, request.headers,
                                     state.clock())
    except signing.SignatureError as exc:
        return _unsigned(exc)
    if not state.replay.first_use(nonce, sent + signing.DEFAULT_SKEW_S + 1):
        return _unsigned(signing.SignatureError("this signed request was already served (a replay); the edge "
                                                "signs every request it sends afresh"))
    return body


async def chat_completions(request: Request) -> Response:
    state: OriginState = request.app.state.origin
    admitted = await _admit(state, request)
    if isinstance(admitted, Response):
        return admitted
    body = admitted
    state.totals.requests += 1
    try:
        chat = wire.parse_chat_request(body, default_model=state.default_model,
                                       max_prompt_chars=state.max_prompt_chars)
    except wire.WireError as exc:
        return error(400, str(exc), "invalid_request")
    if not getattr(state.generator, "supports_tools", False):
        for name in ("tools", "functions"):
            if chat.raw.get(name):
                return JSONResponse({"error": {
                    "message": f"'{name}' cannot be served: this origin's generator ({state.generator.name}) does "
                               "not call tools. Send the request without tools, or run the origin with "
                               "EAVES_GENERATOR=openai and an upstream that supports them.",
                    "type": "invalid_request_error", "code": "tools_not_supported", "param": name}},
                    status_code=400)
    job = jobs.JobTicket.from_headers(request.headers)
    if request.headers.get(jobs.JOB_ID_HEADER) and job is None:
        return error(400, "the job headers are incomplete or malformed", "invalid_job")

    stop = chat.raw.get("stop")
    gen_request = GenerationRequest(model=chat.model, messages=chat.raw["messages"], prompt=chat.prompt,
                                    system=chat.system, max_tokens=chat.max_tokens or state.default_max_tokens,
                                    temperature=chat.temperature,
                                    tenant=request.headers.get(wire.TENANT_HEADER, ""),
                                    user=request.headers.get(wire.USER_HEADER, ""),
                                    extra={"stop": [stop] if isinstance(stop, str) else list(stop or []),
                                           "sampling": {k: chat.raw[k] for k in SAMPLING if k in chat.raw},
                                           **{k: chat.raw[k] for k in TOOL_FIELDS if chat.raw.get(k) is not None}})
    try:
        writeback = WriteBack.from_headers(request.headers)
    except ValueError as exc:
        return error(400, str(exc), "invalid_cache_key")
    tenant = request.headers.get(wire.TENANT_HEADER, "")
    key = f"ans/{writeback.key}" if writeback else request_key(tenant, gen_request.user, chat.raw)

    async def run(flight: Flight) -> None:
        await _generate(state, flight, gen_request, writeback)

    flight, leader = state.flights.join(key, chat.model, run, f"chatcmpl-{uuid.uuid4().hex}")
    if not leader:
        state.totals.coalesced += 1
        metrics.coalesced()
    headers = {"x-eaves-generator": state.generator.name, "x-eaves-coalesced": "leader" if leader else "follower"}

    if job is not None:
        return await jobs.accept(state, job, flight, headers)
    if chat.stream:
        return StreamingResponse(_sse(flight, sse.wants_usage(chat.raw)), media_type=sse.MEDIA_TYPE,
                                 headers={**headers, "cache-control": "no-cache", "x-accel-buffering": "no"})
    try:
        await flight.wait()
    except GenerationError as exc:
        return _generation_error(state, exc)
    headers["x-eaves-generation-ms"] = str(flight.usage.get("eaves", {}).get("generation_ms", ""))
    headers[wire.WRITEBACK_HEADER] = flight.writeback
    return Response(flight.body, media_type="application/json", headers=headers)


def _generation_error(state: OriginState, exc: GenerationError) -> JSONResponse:
    if isinstance(exc, GenerationTimeout):
        return error(504, str(exc), "generation_timeout", "upstream_timeout")
    return error(502, f"the model failed: {exc}", "generation_failed", "upstream_error")


class GenerationTimeout(GenerationError):
    """The generation ran past the origin's time limit."""


async def _generate(state: OriginState, flight: Flight, request: GenerationRequest,
                    writeback: WriteBack | None) -> None:
    """The leader's work: run the model into the flight, build the completion once, write it back."""
    parts: list[str] = []
    calls = ToolCalls()
    completion_tokens = 0
    exact: dict[str, int] | None = None
    try:
        async with asyncio.timeout(state.generation_timeout_s):
            async for piece in state.generator.stream(request):
                if piece.usage is not None:
                    exact = piece.usage
                if piece.finish_reason:
                    flight.finish_reason = piece.finish_reason
                if piece.tool_calls:
                    calls.add(piece.tool_calls)
                if piece.text or piece.tool_calls:
                    parts.append(piece.text)
                    flight.add(piece)
                completion_tokens += piece.tokens
    except TimeoutError as exc:
        state.totals.generation_failures += 1
        raise GenerationTimeout(f"generation took longer than {state.generation_timeout_s:g}s") from exc
    except GenerationError as exc:
        state.totals.generation_failures += 1
        log.warning("generation failed: %s", exc)
        raise
    if not "".join(parts).strip() and not calls:
        # An empty answer is a failed generation: cached, it would be served to everyone who asks.
        state.totals.generation_failures += 1
        raise GenerationError("the model produced no text")
    elapsed = time.perf_counter() - flight.started
    prompt_tokens = state.generator.count_prompt_tokens(request)
    if exact:
        prompt_tokens = exact.get("prompt_tokens", prompt_tokens)
        completion_tokens = exact.get("completion_tokens", completion_tokens)
    ttft = None if flight.first_piece_at is None else flight.first_piece_at - flight.started
    flight.usage = usage_block(prompt_tokens, completion_tokens, generation_s=elapsed, ttft_s=ttft,
                               generator=state.generator.name, prices=state.prices)
    state.totals.record(flight.usage)
    metrics.generation(state.generator.name, flight.usage, elapsed)
    payload = wire.completion_body("".join(parts), model=flight.model, usage=flight.usage,
                                   completion_id=flight.completion_id, created=flight.created,
                                   finish_reason=flight.finish_reason)
    if calls:
        message = payload["choices"][0]["message"]
        message["tool_calls"] = calls.merged()
        message["content"] = message["content"] or None
    flight.body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    if writeback is None:
        flight.writeback = "skipped"
    elif flight.finish_reason != "stop":
        # Truncated (length), filtered or a tool call: not the answer to the question, so never stored
        # for the next asker, and never over an entry that holds a complete one.
        flight.writeback = f"refused:{flight.finish_reason}"
        metrics.writeback("refused")
    elif state.writer.synchronous:
        flight.writeback = await _write_back(state, writeback, flight.body)
    else:
        flight.writeback = "queued"
        state.defer(_write_back(state, writeback, flight.body))
    flight.finish()


async def _write_back(state: OriginState, writeback: WriteBack, body: bytes) -> str:
    now = state.clock()
    ttl, stale, keep = writeback.ttl_s, writeback.stale_s, writeback.keep_s
    answer = wire.CachedAnswer(body, now, now + ttl, writeback.intent, now + ttl + stale, now + ttl + keep)
    try:
        await write_answer(state.writer, writeback.key, answer, expiration_for(ttl, stale, keep))
    except (KVError, OSError) as exc:
        # The answer is still good for this caller; only the next identical request pays again.
        state.totals.writeback_failures += 1
        log.error("write-back of %s failed: %s", writeback.key, exc)
        metrics.writeback("failed")
        return "failed"
    state.totals.writebacks += 1
    metrics.writeback("written")
    return "written"


class ToolCalls:
    """Tool-call deltas merged by index into whole calls (names once, arguments concatenated)."""

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, Any]] = {}

    def __bool__(self) -> bool:
        return bool(self._calls)

    def add(self, deltas: list[dict[str, Any]]) -> None:
        for delta in deltas:
            if not isinstance(delta, dict):
                continue
            index = delta.get("index", len(self._calls))
            call = self._calls.setdefault(index, {"id": "", "type": "function",
                                                  "function": {"name": "", "arguments": ""}})
            call["id"] = delta.get("id") or call["id"]
            function = delta.get("function") or {}
            call["function"]["name"] += function.get("name") or ""
            call["function"]["arguments"] += function.get("arguments") or ""

    def merged(self) -> list[dict[str, Any]]:
        return [self._calls[i] for i in sorted(self._calls)]


async def _sse(flight: Flight, include_usage: bool = False) -> AsyncIterator[bytes]:
    """One client's view of a flight as OpenAI chunks: what was produced so far, then live. The usage
    comes in its own last chunk (``choices: []``) only when the client asked for it, as OpenAI sends it."""
    cid, created, model = flight.completion_id, flight.created, flight.model
    yield sse.chunk(cid, created, model, {"role": "assistant", "content": ""})
    try:
        async for piece in flight.follow():
            delta: dict[str, Any] = {"content": piece.text} if piece.text else {}
            if piece.tool_calls:
                delta["tool_calls"] = piece.tool_calls
            if delta:
                yield sse.chunk(cid, created, model, delta)
    except GenerationError as exc:
        code = "generation_timeout" if isinstance(exc, GenerationTimeout) else "generation_failed"
        yield sse.error_event(f"the model failed mid-answer: {exc}", code=code)
        return
    yield sse.chunk(cid, created, model, {}, finish_reason=flight.finish_reason)
    if include_usage:
        yield sse.usage_chunk(cid, created, model, flight.usage)
    yield sse.DONE


async def list_models(request: Request) -> Response:
    """The model ids this origin answers to: its default model and the generator's own names."""
    state: OriginState = request.app.state.origin
    admitted = await _admit(state, request)
    if isinstance(admitted, Response):
        return admitted
    names = dict.fromkeys([state.default_model, *getattr(state.generator, "model_names", ())])
    models = [{"id": name, "object": "model", "created": state.started, "owned_by": "eaves"} for name in names]
    model_id = request.path_params.get("model_id")
    if model_id is None:
        return JSONResponse({"object": "list", "data": models})
    for model in models:
        if model["id"] == model_id:
            return JSONResponse(model)
    return error(404, f"the model {model_id!r} does not exist here", "model_not_found", "not_found_error")


def has_metrics_token(state: OriginState, request: Request) -> bool:
    """``Authorization: Bearer <metrics token>``: usage, cost and traffic figures are the operator's."""
    return bearer_matches(request.headers.get("authorization", "").encode("utf-8", "surrogatepass"),
                          state.metrics_token)


async def healthz(request: Request) -> Response:
    state: OriginState = request.app.state.origin
    body: dict[str, Any] = {"status": "ok", "generator": state.generator.name, "writer": state.writer.name}
    if has_metrics_token(state, request):
        body.update({"in_flight": len(state.flights), **state.counters})
    return JSONResponse(body)


async def metrics_endpoint(request: Request) -> Response:
    state: OriginState = request.app.state.origin
    if not has_metrics_token(state, request):
        return error(401, "send the metrics token: 'Authorization: Bearer <token>' (eaves up prints it; it is "
                     "in <data-dir>/eaves.json)", "metrics_token_required", "authentication_error",
                     {"www-authenticate": 'Bearer realm="eaves-metrics"'})
    return await metrics.metrics_endpoint(request)


def build_app(state: OriginState) -> Starlette:
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await state.flights.drain()
        if state.background:
            await asyncio.gather(*list(state.background), return_exceptions=True)
        await state.writer.aclose()
        close = getattr(state.generator, "aclose", None)
        if close is not None:
            await close()

    app = Starlette(routes=[Route("/v1/chat/completions", chat_completions, methods=["POST"]),
                            Route("/v1/models", list_models, methods=["GET"]),
                            Route("/v1/models/{model_id:path}", list_models, methods=["GET"]),
                            Route("/healthz", healthz, methods=["GET"]),
                            Route("/metrics", metrics_endpoint, methods=["GET"])],
                    lifespan=lifespan,
                    middleware=[Middleware(metrics.ObserveRequests)])
    app.state.origin = state
    return app


GENERATORS = ("simulator", "llama", "openai")


def default_generator() -> str:
    """``llama`` when the embedded model is installed (``scripts/setup --llm``), else ``simulator``."""
    from origin.generators.llama import llama_available

    return "llama" if llama_available() else "simulator"


def generator_from_env(environ: Mapping[str, str]) -> Generator:
    # Unset means the simulator (tests and tools stay deterministic); `eaves up`/`eaves origin` pass
    # "auto" resolved, which prefers the embedded model when it is installed.
    kind = environ.get("EAVES_GENERATOR") or "simulator"
    if kind == "auto":
        kind = default_generator()
    if kind == "simulator":
        from origin.generators.simulator import SimulatedGenerator

        fail_after = environ.get("EAVES_SIM_FAIL_AFTER_TOKENS")
        return SimulatedGenerator(
            ttft_s=float(environ.get("EAVES_SIM_TTFT_MS", "50")) / 1000,
            tokens_per_s=float(environ.get("EAVES_SIM_TOKENS_PER_S", "200")),
            answer_tokens=int(environ.get("EAVES_SIM_ANSWER_TOKENS", "32")),
            fail_rate=float(environ.get("EAVES_SIM_FAIL_RATE", "0")),
            echo_tenant=environ.get("EAVES_SIM_ECHO_TENANT", "") == "1",
            fail_after_tokens=int(fail_after) if fail_after else None,
        )
    if kind == "llama":
        from origin.generators.llama import LlamaGenerator

        return LlamaGenerator.from_env(environ)
    if kind == "openai":
        from origin.generators.openai_compat import OpenAICompatGenerator

        return OpenAICompatGenerator.from_env(environ)
    raise ValueError(f"EAVES_GENERATOR={kind!r} is not a known generator ({', '.join(GENERATORS)}, auto)")


def create_app() -> Starlette:
    """uvicorn factory, configured from the environment (EAVES_DATA_DIR, EAVES_GENERATOR, EAVES_KV_WRITER, ...)."""
    from origin.replay import LmdbReplayGuard
    from origin.writeback import writer_from_env
    from shared.local_stack import LocalStack

    environ = dict(os.environ)
    stack = LocalStack(Path(environ.get("EAVES_DATA_DIR", ".eaves")))
    generator = generator_from_env(environ)
    writer = writer_from_env(environ, stack.kv_path)
    log.warning("eaves origin: generator %s, KV writer %s", generator.name, writer.name)
    state = OriginState(
        generator=generator,
        writer=writer,
        secret=stack.origin_secret(),
        replay=LmdbReplayGuard(stack.replay_path),
        metrics_token=stack.metrics_token(),
        generation_timeout_s=float(environ.get("EAVES_GENERATION_TIMEOUT_S", "120")),
        default_max_tokens=int(environ.get("EAVES_DEFAULT_MAX_TOKENS", "256")),
        prices=Prices.from_env(environ),
    )
    return build_app(state)
