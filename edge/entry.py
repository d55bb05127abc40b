"""The Cloudflare Python Worker's entry point (wrangler.toml ``main``): the edge core behind Workers' adapters.

The shipped intent model and policy load when this module is imported. Deploy runs the top level once to
take the Worker's memory snapshot, so every isolate starts with the model already parsed; loading it on the
first request instead costs that request the whole parse (see the README's "The edge on WebAssembly" for
the CPU figures measured in Pyodide). Nothing here may draw entropy or do I/O at import: the snapshot
would freeze it.

One ``EdgeApp`` per isolate, built on the first request from ``env``: string vars named ``EAVES_*`` are the
settings (as the emulator reads its environment), ``env.EAVES_KV`` the KV namespace, ``env.EAVES_RATE_LIMIT``
the optional rate-limiting binding, and ``EAVES_ORIGIN_SECRET`` a secret. Each request is converted at the
boundary: the JS ``Request`` into an ``EdgeRequest``, the ``EdgeResponse`` into a JS ``Response`` whose body
is the bytes or, for a stream, a ``ReadableStream`` pulled from the core's iterator chunk by chunk.

Only this module and ``edge.workers`` import ``js``, ``pyodide`` or ``workers``.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import js  # type: ignore[import-not-found]
from pyodide.ffi import create_proxy, to_js  # type: ignore[import-not-found]
from workers import Response, WorkerEntrypoint  # type: ignore[import-not-found]

from edge import bootstrap, errors
from edge.app import EdgeApp
from edge.coalesce import Coalescer, Uncoalesced
from edge.http import EdgeRequest, EdgeResponse
from edge.memory import MemoryRateLimiter
from edge.ports import RateLimiter
from edge.settings import EdgeSettings, SettingsError
from edge.workers._js import is_null, js_object
from edge.workers.background import WorkersBackground
from edge.workers.clock import WorkersClock
from edge.workers.kv import WorkersKV
from edge.workers.origin import WorkersOrigin
from edge.workers.ratelimit import WorkersRateLimiter

log = logging.getLogger("eaves.edge.entry")

KV_BINDING = "EAVES_KV"
RATE_LIMIT_BINDING = "EAVES_RATE_LIMIT"
_NO_BODY_METHODS = frozenset({"GET", "HEAD"})

# Inside deploy's memory snapshot (see the module docstring). A Worker whose env picks another model or
# policy, or turns intent off, loads what it picks on its first request instead.
SHIPPED_INTENT = bootstrap.load_intent({}, runtime="lite")

# Off on Workers: a request may not use I/O that another request created (edge/coalesce.py says what
# workerd allows). Only tests turn it on, to show the local runtime refusing it as workerd does.
COALESCE = False

# The request being served in this task: background work goes to its ctx.waitUntil.
_current_ctx: contextvars.ContextVar[Any] = contextvars.ContextVar("eaves_ctx", default=None)
_edge: EdgeApp | None = None


class _RequestBackground:
    """``Background`` for an isolate-wide EdgeApp: each piece of work goes to the waitUntil of the request
    that started it (a ContextVar, which every request's task has its own copy of)."""

    def __init__(self) -> None:
        self._orphans: set[asyncio.Future[Any]] = set()

    def defer(self, work: Awaitable[Any]) -> None:
        ctx = _current_ctx.get()
        if ctx is None:  # not inside a request (tests): still run it, and keep it alive until done
            task = asyncio.ensure_future(work)
            self._orphans.add(task)
            task.add_done_callback(self._orphans.discard)
            return
        WorkersBackground(ctx).defer(work)


def env_settings(env: Any) -> dict[str, str]:
    """The ``EAVES_*`` string vars and secrets of ``env`` (bindings are objects and are skipped)."""
    target = getattr(env, "_env", env)  # the SDK's wrapper keeps the JS env here
    values: dict[str, str] = {}
    for name in js.Object.keys(target):
        name = str(name)
        if name.startswith("EAVES_"):
            value = getattr(target, name)
            if isinstance(value, str):
                values[name] = value
    return values


def build_edge(env: Any) -> EdgeApp:
    values = env_settings(env)
    settings = EdgeSettings.from_mapping(values)
    if not settings.origin_secret:
        raise SettingsError("EAVES_ORIGIN_SECRET is not set: `wrangler secret put EAVES_ORIGIN_SECRET`")
    kv_binding = getattr(env, KV_BINDING, None)
    if is_null(kv_binding):
        raise SettingsError(f"the KV namespace binding {KV_BINDING} is missing (wrangler.toml [[kv_namespaces]])")
    if bootstrap.uses_shipped_intent(values):
        classifier, policy = SHIPPED_INTENT
    else:
        classifier, policy = bootstrap.load_intent(values, runtime="lite")
    return EdgeApp(settings=settings, kv=WorkersKV(kv_binding), origin=WorkersOrigin(settings.origin_url),
                   limiter=rate_limiter(env, values), clock=WorkersClock(), background=_RequestBackground(),
                   classifier=classifier, policy=policy, runtime="pyodide",
                   coalescer=Coalescer() if COALESCE else Uncoalesced())


def rate_limiter(env: Any, values: dict[str, str]) -> RateLimiter:
    """The rate-limiting binding for the tier whose budget equals its configuration (EAVES_RATE_LIMIT_LIMIT
    per EAVES_RATE_LIMIT_PERIOD_S, as in wrangler.toml); every other budget is counted in this isolate."""
    isolate = MemoryRateLimiter()
    binding = getattr(env, RATE_LIMIT_BINDING, None)
    limit, period = values.get("EAVES_RATE_LIMIT_LIMIT"), values.get("EAVES_RATE_LIMIT_PERIOD_S")
    if is_null(binding) or not limit or not period:
        return isolate
    return WorkersRateLimiter(binding, limit=int(limit), period_s=int(period), fallback=isolate)


async def to_edge_request(request: Any) -> EdgeRequest:
    raw = getattr(request, "js_object", request)  # workers.Request or the JS Request itself
    url = js.URL.new(raw.url)
    headers = {str(k).lower(): str(v) for k, v in js.Object.fromEntries(raw.headers).to_py().items()}
    method = str(raw.method).upper()
    body = b"" if method in _NO_BODY_METHODS else bytes((await raw.arrayBuffer()).to_bytes())
    return EdgeRequest(method, str(url.pathname), headers, body, str(url.search).lstrip("?"),
                       headers.get("cf-connecting-ip", ""))


def to_js_response(response: EdgeResponse) -> Any:
    headers = js.Headers.new()
    headers.set("content-type", response.content_type)
    for name, value in response.headers:
        headers.append(name, value)
    body = response.body
    js_body = readable_stream(body) if response.streaming else (to_js(bytes(body)) if body else None)
    return js.Response.new(js_body, js_object({"status": response.status, "headers": headers}))


def readable_stream(body: AsyncIterator[bytes]) -> Any:
    """A ReadableStream that pulls the next chunk from ``body`` only when the client wants one, so the core's
    stream (the origin's, relayed with heartbeats) reaches the client as it is produced, never buffered."""
    iterator = aiter(body)
    proxies: list[Any] = []

    def release() -> None:
        for proxy in proxies:
            proxy.destroy()
        proxies.clear()

    async def pull(controller: Any) -> None:
        try:
            chunk = await anext(iterator)
        except StopAsyncIteration:
            controller.close()
            release()
            return
        except Exception as exc:  # the core ends broken streams with an event; this is a last resort
            log.exception("stream failed")
            controller.error(js.Error.new(f"the edge's stream failed: {exc}"))
            release()
            return
        controller.enqueue(to_js(chunk))

    async def cancel(_reason: Any) -> None:  # the client went away: stop reading the origin
        close = getattr(iterator, "aclose", None)
        if close is not None:
            await close()
        release()

    proxies += [create_proxy(pull), create_proxy(cancel)]
    return js.ReadableStream.new(js_object({"pull": proxies[0], "cancel": proxies[1]}))


def misconfigured(message: str) -> Any:
    return to_js_response(errors.EdgeError(f"the edge is misconfigured: {message}",
                                           code="edge_misconfigured").to_response())


class Default(WorkerEntrypoint):  # type: ignore[misc]
    async def fetch(self, request: Any) -> Any:
        global _edge
        _current_ctx.set(self.ctx)
        try:
            if _edge is None:
                _edge = build_edge(self.env)
        except (SettingsError, ValueError) as exc:
            log.error("edge configuration: %s", exc)
            return Response(misconfigured(str(exc)))
        response = await _edge.handle(await to_edge_request(request))
        return Response(to_js_response(response))
