"""The edge's in-process cache-hit path, measured without a network: what one hit costs the core.

Three layers, each timed per request over many iterations:

    core/memory   ``EdgeApp.handle`` with the in-memory runtime (edge.memory): the platform-neutral logic
    core/lmdb     ``EdgeApp.handle`` with the emulator's LMDB KV and LMDB rate-limit counters
    asgi/lmdb     the emulator's ASGI app (``EdgeASGI``) called directly: adds the ASGI adapter and metrics
                  (JSON logs off); ``/no-metrics`` and ``/logs`` show what each costs. One worker, as `eaves up`
                  runs it (rate-limit counters in memory, written back to LMDB); ``/workers``: the counters
                  of a server with several workers (an LMDB write transaction per request)
    http/lmdb     the same app behind uvicorn's own HTTP protocol (httptools, with the servers' request-head
                  limits), fed the request's bytes and writing the response's bytes into a stand-in transport:
                  everything a served hit costs but the sockets and the event loop's I/O (logs and metrics on,
                  as `eaves up` runs)
    ceiling/asgi  the ceiling app (Starlette routing, bearer check, JSON parse) called as asgi/lmdb is
    ceiling/http  and behind plain uvicorn's protocol, as the ceiling server runs

and the segments the core reports in ``Server-Timing`` (auth, ratelimit, parse, kv), as medians: on a
shared machine a preempted request adds milliseconds to a mean but nothing to a median.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.app import CHAT_PATH, EdgeApp
from edge.auth import KEY_PREFIX, api_key_hash, api_key_record, new_api_key
from edge.http import EdgeRequest, EdgeResponse
from edge.memory import MemoryKV, MemoryRateLimiter, SystemClock, TaskBackground
from edge.settings import EdgeSettings, Tier
from shared import wire

TENANT = "bench"
TIER = "bench"
BENCH_TIERS = {TIER: Tier(1_000_000_000, 60)}  # the benchmark measures the hit path, not refusals
DEFAULT_PROMPT = "How do I reset my password?"


def chat_body(prompt: str, model: str = "eaves-default", user: str = "") -> bytes:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": prompt}]}
    if user:  # an end user: the edge then reads the shared and the user's own key concurrently
        body["user"] = user
    return json.dumps(body).encode()


def answer_body(prompt: str, model: str = "eaves-default") -> bytes:
    completion = wire.completion_body(f"A cached answer to: {prompt}", model=model,
                                      completion_id="chatcmpl-bench", created=1_700_000_000)
    return json.dumps(completion, separators=(",", ":")).encode()


async def seed(kv: Any, edge: EdgeApp, api_key: str, prompts: list[str], ttl_s: int = 3600) -> None:
    """Store the API key's record and a fresh cached answer for each prompt, as the origin would."""
    await kv.put(KEY_PREFIX + api_key_hash(api_key), api_key_record(TENANT, TIER, "bench", time.time()))
    now = time.time()
    for prompt in prompts:
        _, digest = edge.parser.parse(chat_body(prompt), "")  # the edge's own key recipe
        answer = wire.CachedAnswer(answer_body(prompt), now, now + ttl_s, "oos")
        await kv.put(edge.parser.keys_for(TENANT, "", digest).shared, answer.body, expiration_ttl=ttl_s,
                     metadata=answer.metadata())


def hit_request(api_key: str, prompt: str = DEFAULT_PROMPT, user: str = "") -> EdgeRequest:
    headers = {"host": "127.0.0.1", "authorization": f"Bearer {api_key}", "content-type": "application/json",
               "user-agent": "eaves-bench", "accept": "*/*"}
    body = chat_body(prompt, user=user)
    headers["content-length"] = str(len(body))
    return EdgeRequest("POST", CHAT_PATH, headers, body)


@dataclass
class Sample:
    name: str
    n: int
    p50_us: float
    p90_us: float
    p99_us: float
    mean_us: float
    segments_us: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return {"n": self.n, "p50_us": round(self.p50_us, 1), "p90_us": round(self.p90_us, 1),
                "p99_us": round(self.p99_us, 1), "mean_us": round(self.mean_us, 1),
                "segments_us": {k: round(v, 1) for k, v in self.segments_us.items()}}


def _percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def _segments(header: str | None, into: dict[str, list[float]]) -> None:
    if not header:
        return
    for part in header.split(", "):
        name, _, dur = part.partition(";dur=")
        into.setdefault(name, []).append(float(dur) * 1000)  # ms → µs


@dataclass
class Layer:
    """One way of calling the hit path: ``call`` does one request, ``timing_of`` finds its Server-Timing."""

    name: str
    call: Callable[[], Awaitable[Any]]
    timing_of: Callable[[Any], str | None]
    durations: list[float] = field(default_factory=list)
    totals: dict[str, list[float]] = field(default_factory=dict)

    def sample(self) -> Sample:
        durations = sorted(self.durations)
        n = len(durations)
        return Sample(self.name, n, _percentile(durations, 0.50), _percentile(durations, 0.90),
                      _percentile(durations, 0.99), statistics.fmean(durations),
                      {k: statistics.median(v) for k, v in self.totals.items()})


async def _measure(layer: Layer, iterations: int) -> None:
    call, timing_of, durations, totals = layer.call, layer.timing_of, layer.durations, layer.totals
    clock = time.perf_counter_ns
    for _ in range(iterations):
        start = clock()
        result = await call()
        durations.append((clock() - start) / 1000)
        _segments(timing_of(result), totals)


async def measure_interleaved(layers: list[Layer], iterations: int, chunks: int = 20) -> None:
    """Time every layer, a chunk of iterations each in turn, so machine noise spreads over all of them."""
    for layer in layers:
        for _ in range(min(2000, iterations)):  # warm: key cache, LMDB pages, allocator
            await layer.call()
    per_chunk = max(1, iterations // chunks)
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()  # a collection mid-sample is real but rare; keep the per-request figures steady
    try:
        for _ in range(chunks):
            for layer in layers:
                await _measure(layer, per_chunk)
    finally:
        if gc_was_enabled:
            gc.enable()


def _check_hit(response: EdgeResponse) -> None:
    if response.status != 200 or response.header(wire.ROUTE_HEADER) != "hit":
        raise RuntimeError(f"the hit-path benchmark did not get a hit: {response.status} {response.headers} "
                           f"{response.body!r}")


def _settings() -> EdgeSettings:
    return EdgeSettings(origin_secret=b"bench", tiers=BENCH_TIERS)


async def core_memory(user: str = "") -> Layer:
    """``EdgeApp.handle`` over the in-memory runtime (with ``user``: a request naming its end user)."""
    from edge.memory import CallbackOrigin

    async def no_origin(request: Any) -> Any:
        raise RuntimeError("the hit-path benchmark reached the origin")

    kv = MemoryKV()
    edge = EdgeApp(_settings(), kv, CallbackOrigin(no_origin), MemoryRateLimiter(), SystemClock(), TaskBackground())
    api_key = new_api_key()
    await seed(kv, edge, api_key, [DEFAULT_PROMPT])
    request = hit_request(api_key, user=user)
    _check_hit(await edge.handle(request))
    return Layer("core/memory/user" if user else "core/memory", lambda: edge.handle(request),
                 lambda r: r.header("server-timing"))


async def core_lmdb(data_dir: Path, cleanup: list[Callable[[], Awaitable[None]]], user: str = "") -> Layer:
    """``EdgeApp.handle`` over the emulator's LMDB KV and rate-limit counters, no observer."""
    from edge.emulator.asgi import build_local_edge

    edge, origin = build_local_edge(data_dir, {"EAVES_TIERS": json.dumps({TIER: {"limit": 10**9, "window_s": 60}}),
                                               "EAVES_INTENT": "off", "EAVES_LOG": "off"})
    cleanup.append(origin.aclose)
    api_key = new_api_key()
    await seed(edge.kv, edge, api_key, [DEFAULT_PROMPT])
    request = hit_request(api_key, user=user)
    _check_hit(await edge.handle(request))
    return Layer("core/lmdb/user" if user else "core/lmdb", lambda: edge.handle(request),
                 lambda r: r.header("server-timing"))


async def asgi_lmdb(data_dir: Path, cleanup: list[Callable[[], Awaitable[None]]], *, name: str = "asgi/lmdb",
                    metrics: bool = True, logs: bool = False, workers: int = 1) -> Layer:
    """The emulator's ASGI app called directly with one hit request (no sockets, no HTTP parsing)."""
    from edge.emulator.asgi import EdgeASGI

    environ = {"EAVES_TIERS": json.dumps({TIER: {"limit": 10**9, "window_s": 60}}), "EAVES_INTENT": "off",
               "EAVES_LOG": "on" if logs else "off", "EAVES_METRICS": "on" if metrics else "off",
               "EAVES_EDGE_WORKERS": str(workers)}
    app = EdgeASGI(data_dir, environ)
    edge = app._ensure()
    cleanup.append(app.aclose)  # writes its buffered log lines while stdout is still the null device
    api_key = new_api_key()
    await seed(edge.kv, edge, api_key, [DEFAULT_PROMPT])
    request = hit_request(api_key)
    call, timing_of = _asgi_caller(app, request)
    messages = await call()
    route = dict(messages[0]["headers"]).get(wire.ROUTE_HEADER.encode())
    if messages[0]["status"] != 200 or route != b"hit":
        raise RuntimeError(f"the ASGI hit-path benchmark did not get a hit: {messages}")
    return Layer(name, call, timing_of)


async def ceiling_app() -> Layer:
    """The ceiling app (eaves.bench.ceiling) called the same way: what Starlette's routing, a bearer check
    and a JSON parse cost in-process, to set beside the emulator's ASGI figure."""
    from eaves.bench.ceiling import create_app

    os.environ.setdefault("EAVES_CEILING_KEY", "ceiling")
    app = create_app()
    call, timing_of = _asgi_caller(app, hit_request(os.environ["EAVES_CEILING_KEY"]))
    messages = await call()
    if messages[0]["status"] != 200:
        raise RuntimeError(f"the ceiling app refused the benchmark request: {messages}")
    return Layer("ceiling/asgi", call, timing_of)


class CollectingTransport:
    """What uvicorn's protocol needs of a transport: it collects the response bytes and remembers a close
    (this benchmark's in-process HTTP layer, and the emulator protocol's tests)."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass


def _raw_request(request: EdgeRequest) -> bytes:
    head = f"{request.method} {request.path} HTTP/1.1\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in request.headers.items()) + "\r\n"
    return head.encode("latin-1") + request.body


async def _http_caller(app: Any, request: EdgeRequest, *, limits: bool = True
                       ) -> tuple[Callable[[], Awaitable[Any]], Callable[[Any], str | None]]:
    """One keep-alive connection into uvicorn's httptools protocol as `eaves edge` configures it (with the
    request-head limits of edge.emulator.limits), or as plain uvicorn runs the ceiling (``limits=False``)."""
    from uvicorn.config import Config
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    from uvicorn.server import ServerState

    from edge.emulator.limits import uvicorn_options

    protocol_class = uvicorn_options()["http"] if limits else HttpToolsProtocol
    config = Config(app, http=protocol_class, access_log=False, lifespan="off", log_level="warning")
    state = ServerState()
    protocol = protocol_class(config, state, {}, _loop=asyncio.get_running_loop())
    transport = CollectingTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    raw = _raw_request(request)

    async def call() -> bytes:
        transport.written.clear()
        protocol.data_received(raw)
        if limits:  # the edge's protocol parses from the ready queue, one callback per loop round of connections
            protocol.parse_pending()  # (edge.emulator.limits); here each round has one, so parse it at once
        while state.tasks:  # the request's task, created by the protocol
            await next(iter(state.tasks))
        return b"".join(transport.written)

    def timing_of(response: bytes) -> str | None:
        head = response.split(b"\r\n\r\n", 1)[0]
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"server-timing:"):
                return line.split(b":", 1)[1].strip().decode()
        return None

    return call, timing_of


async def http_lmdb(data_dir: Path, cleanup: list[Callable[[], Awaitable[None]]]) -> Layer:
    """The emulator's ASGI app behind uvicorn's protocol, logs and metrics on, one worker (the defaults)."""
    from edge.emulator.asgi import EdgeASGI

    environ = {"EAVES_TIERS": json.dumps({TIER: {"limit": 10**9, "window_s": 60}}), "EAVES_INTENT": "off",
               "EAVES_EDGE_WORKERS": "1"}
    app = EdgeASGI(data_dir, environ)
    edge = app._ensure()
    cleanup.append(app.aclose)
    api_key = new_api_key()
    await seed(edge.kv, edge, api_key, [DEFAULT_PROMPT])
    call, timing_of = await _http_caller(app, hit_request(api_key))
    response = await call()
    if not response.startswith(b"HTTP/1.1 200") or b"x-edge-route: hit" not in response:
        raise RuntimeError(f"the HTTP hit-path benchmark did not get a hit: {response[:500]!r}")
    return Layer("http/lmdb", call, timing_of)


async def ceiling_http() -> Layer:
    from eaves.bench.ceiling import create_app

    os.environ.setdefault("EAVES_CEILING_KEY", "ceiling")
    call, timing_of = await _http_caller(create_app(), hit_request(os.environ["EAVES_CEILING_KEY"]), limits=False)
    response = await call()
    if not response.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"the ceiling app refused the benchmark request: {response[:500]!r}")
    return Layer("ceiling/http", call, timing_of)


def _asgi_caller(app: Any, request: EdgeRequest) -> tuple[Callable[[], Awaitable[Any]], Callable[[Any], str | None]]:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": CHAT_PATH, "raw_path": CHAT_PATH.encode(), "query_string": b"",
             "root_path": "", "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8787),
             "headers": [(k.encode(), v.encode()) for k, v in request.headers.items()]}
    body_message = {"type": "http.request", "body": request.body, "more_body": False}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return body_message

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def call() -> list[dict[str, Any]]:
        sent.clear()
        await app(scope, receive, send)
        return sent

    def timing_of(messages: list[dict[str, Any]]) -> str | None:
        for header, value in messages[0]["headers"]:
            if header == b"server-timing":
                return str(value.decode())
        return None

    return call, timing_of


def run(iterations: int = 20_000, data_dir: Path | None = None) -> dict[str, Sample]:
    """Every layer in one process, interleaved; log lines (the /logs layer) go to the null device."""
    async def main(root: Path) -> dict[str, Sample]:
        cleanup: list[Callable[[], Awaitable[None]]] = []
        try:
            layers = [await core_memory(), await core_lmdb(root / "core", cleanup),
                      await core_memory(user="bench-user"),
                      await core_lmdb(root / "core-user", cleanup, user="bench-user"),
                      await asgi_lmdb(root / "asgi", cleanup),
                      await asgi_lmdb(root / "asgi-nm", cleanup, name="asgi/lmdb/no-metrics", metrics=False),
                      await asgi_lmdb(root / "asgi-logs", cleanup, name="asgi/lmdb/logs", logs=True),
                      await asgi_lmdb(root / "asgi-workers", cleanup, name="asgi/lmdb/workers", workers=2),
                      await http_lmdb(root / "http", cleanup), await ceiling_app(), await ceiling_http()]
            await measure_interleaved(layers, iterations)
        finally:
            for close in cleanup:
                await close()
        return {layer.name: layer.sample() for layer in layers}

    # Log lines go to the null device, line-buffered as stdout is on a terminal, a pipe or with
    # PYTHONUNBUFFERED: a line written on its own costs a system call there, as it does in `eaves up`.
    with open(os.devnull, "w", buffering=1) as sink, contextlib.redirect_stdout(sink):
        if data_dir is not None:
            return asyncio.run(main(data_dir))
        with tempfile.TemporaryDirectory(prefix="eaves-hitpath-") as tmp:
            return asyncio.run(main(Path(tmp)))


if __name__ == "__main__":
    for sample in run().values():
        print(sample.name, json.dumps(sample.as_dict()))
