"""The origin's Prometheus metrics and JSON request log.

Metrics use prometheus_client; with several uvicorn workers, ``eaves origin`` points
``PROMETHEUS_MULTIPROC_DIR`` at an emptied ``<data-dir>/metrics/origin`` before any worker starts, each
worker writes its values to mmap'd files there, and ``/metrics`` (in whichever worker answers) sums them
with ``MultiProcessCollector``. Without that variable the process's own registry is exported.

The origin is not on the hit path, and a generation takes milliseconds at least, so the library's
few microseconds per update do not matter here (the edge counts differently: see edge.metrics).

Callers in the request handlers use three functions: ``generation(...)`` (tokens, estimated cost),
``writeback(result)`` and ``coalesced()``; the middleware counts every request and logs it.
"""

from __future__ import annotations

import os
import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, values
from starlette.requests import Request
from starlette.responses import Response

from shared import wire
from shared.jsonlog import JsonLineWriter

DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

REQUESTS = Counter("eaves_origin_requests", "Requests answered by the origin, by path and HTTP status.",
                   ["path", "status"])
DURATION = Histogram("eaves_origin_request_duration_seconds", "Time from request to the end of the response.",
                     ["path"], buckets=DURATION_BUCKETS)
GENERATIONS = Counter("eaves_origin_generations", "Completed generations, by generator.", ["generator"])
GENERATION_SECONDS = Histogram("eaves_origin_generation_seconds", "Time spent generating one answer.",
                               ["generator"], buckets=DURATION_BUCKETS)
TOKENS = Counter("eaves_origin_tokens", "Tokens processed, by kind (prompt, completion).", ["kind"])
COST = Counter("eaves_origin_estimated_cost_usd", "Estimated model cost in USD, from the token counts and "
               "EAVES_PRICE_PROMPT_PER_MTOK / EAVES_PRICE_COMPLETION_PER_MTOK.")
WRITEBACKS = Counter("eaves_origin_writebacks", "Answers written back to the edge KV, by result.", ["result"])
COALESCED = Counter("eaves_origin_coalesced", "Requests that waited for an identical in-flight generation.")

# USD per million tokens. Placeholders for the simulator; set them to your model's list prices.
DEFAULT_PRICE_PROMPT_PER_MTOK = 0.50
DEFAULT_PRICE_COMPLETION_PER_MTOK = 1.50
_PATHS = frozenset({"/v1/chat/completions", "/healthz", "/metrics"})


def _price(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def estimated_cost(prompt_tokens: int, completion_tokens: int) -> float:
    return (prompt_tokens * _price("EAVES_PRICE_PROMPT_PER_MTOK", DEFAULT_PRICE_PROMPT_PER_MTOK)
            + completion_tokens * _price("EAVES_PRICE_COMPLETION_PER_MTOK", DEFAULT_PRICE_COMPLETION_PER_MTOK)) / 1e6


def generation(generator: str, usage: dict[str, Any], seconds: float) -> None:
    """Count one finished generation: its tokens, its estimated cost and how long it took."""
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    GENERATIONS.labels(generator).inc()
    GENERATION_SECONDS.labels(generator).observe(seconds)
    TOKENS.labels("prompt").inc(prompt)
    TOKENS.labels("completion").inc(completion)
    # The origin's own estimate (origin.accounting) when the usage block carries one.
    cost = (usage.get("eaves") or {}).get("estimated_cost_usd")
    COST.inc(float(cost) if cost is not None else estimated_cost(prompt, completion))


def writeback(result: str) -> None:
    WRITEBACKS.labels(result).inc()


def coalesced() -> None:
    COALESCED.inc()


def render() -> bytes:
    """Prometheus text: every worker's files summed when this process counts into them, else its own registry.

    Which one is decided by how this process's values were created, not by the variable alone: prometheus_client
    picks the multiprocess values when it is first imported, and a one-worker ``eaves origin`` imports it (to
    empty the directory) before it sets ``PROMETHEUS_MULTIPROC_DIR``, so its counts never reach the files.
    """
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory and values.ValueClass is not values.MutexValue:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)
        return generate_latest(registry)
    return generate_latest()


async def metrics_endpoint(request: Request) -> Response:
    return Response(render(), media_type=CONTENT_TYPE_LATEST)


class ObserveRequests:
    """ASGI middleware: counts and times every HTTP request and writes one JSON log line for it,
    carrying the edge's ``x-request-id`` (and echoing it back) so edge and origin lines join up."""

    def __init__(self, app: Any, log: JsonLineWriter | None = None, enabled_log: bool | None = None) -> None:
        self.app = app
        self.log = log or JsonLineWriter("origin")
        if enabled_log is None:
            enabled_log = os.environ.get("EAVES_LOG", "on").lower() not in ("off", "0", "false", "no")
        self.enabled_log = enabled_log

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = tenant = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                request_id = wire.clean_request_id(value.decode("latin-1"), 160) or ""
            elif name == b"x-eaves-tenant":
                tenant = value.decode("latin-1")[:128]
        status = 500

        async def observe_send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if request_id:
                    message["headers"] = [*message.get("headers", []),
                                          (wire.REQUEST_ID_HEADER.encode(), request_id.encode("latin-1"))]
            await send(message)

        try:
            await self.app(scope, receive, observe_send)
        finally:
            seconds = time.perf_counter() - started
            path = scope["path"] if scope["path"] in _PATHS else "other"
            REQUESTS.labels(path, str(status)).inc()
            DURATION.labels(path).observe(seconds)
            if self.enabled_log and path != "/metrics":
                line = {"request_id": request_id, "method": scope["method"], "path": scope["path"],
                        "status": status, "tenant": tenant, "duration_ms": round(seconds * 1000, 3)}
                if status == 401:
                    # Refused as unsigned: the tenant header is only what the caller claimed, so it is not
                    # logged as the tenant (a log reader filtering by tenant must not see forged lines).
                    line["tenant"], line["claimed_tenant"] = "", tenant
                self.log.write(line)


def reset_directory(directory: str | os.PathLike[str]) -> None:
    """Empty the multiprocess directory: once per server start, before any worker exists."""
    from pathlib import Path

    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for item in path.iterdir():
        if item.is_file() and item.suffix == ".db":
            item.unlink(missing_ok=True)
