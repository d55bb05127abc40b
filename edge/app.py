"""The edge handler: request in, response out, every step through a port.

    auth → rate limit → parse → KV lookup → classify → route (block | edge | cache | origin)

The KV lookup comes before classification on purpose: an answer is only ever stored for a
prompt the current model and policy routed to the cache (their versions are in the key), so a hit
needs no classification, and the hit path stays a hash, a counter update and one KV read.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from edge import errors
from edge.auth import Authenticator, Principal
from edge.http import EdgeRequest, EdgeResponse, json_bytes, json_response
from edge.parsing import RequestParser
from edge.ports import Background, Clock, KVStore, OriginClient, OriginRequest, RateLimiter
from edge.ratelimit import rate_limit_headers
from edge.settings import EdgeSettings
from edge.timing import Timing
from shared import signing, wire
from shared.intent.routing import (
    CacheEverything,
    Intent,
    IntentClassifier,
    NoClassifier,
    Route,
    RoutePolicy,
)

CHAT_PATH = "/v1/chat/completions"
ORIGIN_CHAT_PATH = "/v1/chat/completions"

# (request, response, timing, request id) -> None; must not raise, and must be cheap: it runs on every hit.
Observer = Callable[[EdgeRequest, EdgeResponse, Timing, str], None]


@dataclass
class EdgeApp:
    settings: EdgeSettings
    kv: KVStore
    origin: OriginClient
    limiter: RateLimiter
    clock: Clock
    background: Background
    classifier: IntentClassifier = field(default_factory=NoClassifier)
    policy: RoutePolicy = field(default_factory=CacheEverything)
    # Called once per request after the response is built (metrics, logs): see edge.metrics.
    observer: Observer | None = None

    def __post_init__(self) -> None:
        self.auth = Authenticator(self.kv, self.clock, self.settings.jwt, frozenset(self.settings.tiers),
                                  self.settings.key_cache_ttl_s)
        self.versions = f"m:{self.classifier.version}|p:{self.policy.version}|t:{self.settings.prompt_version}"
        self.parser = RequestParser(default_model=self.settings.default_model,
                                    max_prompt_chars=self.settings.max_prompt_chars, versions=self.versions)

    async def handle(self, request: EdgeRequest) -> EdgeResponse:
        timing = Timing(self.clock.monotonic)
        request_id = request.headers.get(wire.REQUEST_ID_HEADER) or os.urandom(8).hex()
        try:
            if request.path == CHAT_PATH:
                if request.method != "POST":
                    raise errors.MethodNotAllowed(f"{CHAT_PATH} accepts POST only")
                response = await self._chat(request, request_id, timing)
            elif request.path == "/healthz":
                response = json_response(200, {"status": "ok"})
            else:
                raise errors.NotFound(f"no route for {request.method} {request.path}")
        except errors.EdgeError as exc:
            response = exc.to_response()
            if isinstance(exc, errors.Blocked):
                response.headers.append((wire.ROUTE_HEADER, "blocked"))
        response.headers.append((wire.REQUEST_ID_HEADER, request_id))
        response.headers.append(("server-timing", timing.header()))
        if self.observer is not None:
            self.observer(request, response, timing, request_id)
        return response

    async def _chat(self, request: EdgeRequest, request_id: str, timing: Timing) -> EdgeResponse:
        settings = self.settings
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith("application/json"):
            raise errors.UnsupportedMediaType("send the body as JSON with 'Content-Type: application/json'",
                                              code="unsupported_media_type")
        if len(request.body) > settings.max_body_bytes:
            raise errors.PayloadTooLarge(f"request body is {len(request.body)} bytes; this edge accepts at "
                                         f"most {settings.max_body_bytes}", code="body_too_large")

        principal = await self.auth.authenticate(request.headers)
        timing.mark("auth")
        timing.tenant = principal.tenant
        limit_headers = await self._rate_limit(principal)
        timing.mark("ratelimit")

        try:
            chat, key = self.parser.parse(request.body, principal.tenant, request.headers.get("x-eaves-locale", ""))
        except wire.WireError as exc:
            raise errors.BadRequest(str(exc), param=exc.param, code="invalid_request") from exc
        timing.mark("parse")

        entry = await self.kv.get(key)
        timing.mark("kv")
        if entry is not None:
            cached = wire.CachedAnswer.from_kv(entry.value, entry.metadata)
            if cached is not None and cached.fresh_until > self.clock.now():
                headers = [(wire.ROUTE_HEADER, "hit"), (wire.INTENT_HEADER, cached.intent), *limit_headers]
                return EdgeResponse(200, cached.body, headers)

        intent = self.classifier.classify(chat.prompt)
        route = self.policy.route(intent)
        timing.mark("classify")
        if route.action == "block":
            raise errors.Blocked(f"this request was refused by the edge's policy ({route.reason or intent.label})",
                                 code="blocked_by_policy", headers=[(wire.INTENT_HEADER, intent.label)])
        if route.action == "edge" and route.answer is not None:
            body = json_bytes(wire.completion_body(route.answer, model=chat.model))
            return EdgeResponse(200, body, [(wire.ROUTE_HEADER, "edge"), (wire.INTENT_HEADER, intent.label),
                                            *limit_headers])
        response = await self._forward(request, principal, key, intent, route, request_id)
        timing.mark("origin")
        response.headers.extend(limit_headers)
        return response

    async def _rate_limit(self, principal: Principal) -> list[tuple[str, str]]:
        tier = self.settings.tiers.get(principal.tier)
        if tier is None:
            raise errors.Forbidden(f"tier {principal.tier!r} is not configured on this edge", code="unknown_tier")
        decision = await self.limiter.acquire(f"{principal.tenant}:chat", tier.limit, tier.window_s)
        headers = rate_limit_headers(decision)
        if not decision.allowed:
            raise errors.RateLimited(f"rate limit of {tier.limit} requests per {tier.window_s}s exceeded for "
                                     "this tenant; retry after the time in Retry-After",
                                     code="rate_limit_exceeded", headers=headers)
        return headers

    async def _forward(self, request: EdgeRequest, principal: Principal, key: str, intent: Intent,
                       route: Route, request_id: str) -> EdgeResponse:
        headers = {
            "content-type": "application/json",
            wire.TENANT_HEADER: principal.tenant,
            wire.CACHE_INTENT_HEADER: intent.label,
            wire.REQUEST_ID_HEADER: request_id,
        }
        if route.action == "cache" and route.ttl_s:
            headers[wire.CACHE_KEY_HEADER] = key
            headers[wire.CACHE_TTL_HEADER] = str(route.ttl_s)
            headers[wire.CACHE_STALE_HEADER] = str(route.stale_s)
        # Signed: body, path and every x-eaves-* header; the origin refuses anything else.
        headers.update(signing.sign(self.settings.origin_secret, "POST", ORIGIN_CHAT_PATH, request.body,
                                    self.clock.now(), headers))
        upstream = await self.origin.send(OriginRequest(ORIGIN_CHAT_PATH, request.body, headers,
                                                        timeout_s=self.settings.origin_timeout_s))
        if upstream.status >= 500:
            raise errors.UpstreamError(f"the origin failed with status {upstream.status}", code="origin_error")
        route_name = "miss" if upstream.status == 200 else "origin"
        out_headers = [(wire.ROUTE_HEADER, route_name), (wire.INTENT_HEADER, intent.label)]
        content_type = upstream.headers.get("content-type", "application/json")
        if not content_type.startswith("application/json"):
            out_headers.append(("content-type", content_type))
        return EdgeResponse(upstream.status, upstream.body, out_headers, content_type=content_type)
