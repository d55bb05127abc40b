"""The edge handler: request in, response out, every step through a port.

    auth → rate limit → parse → KV lookup → classify → route (block | edge | cache | origin | async)
                                   │                                           │ fails
                                   └─ fresh: hit / stale: serve + refresh      └─► stale → canned → 502/503/504

The KV lookup comes before classification on purpose: an answer is only ever stored for a
prompt the current model and policy routed to the cache (their versions are in the key), so a hit
needs no classification, and the hit path stays a hash, a counter update and one KV read (a
user-scoped hit reads two: see "Scopes" below).

Scopes. The route says who may be served a stored answer: ``shared`` (the tenant), ``user`` (only the
end user who asked) or ``none``. Before classifying, the edge does not know the scope, so it reads the
shared key and, when that is empty and the end user is known, that user's own key
(``shared.cache_keys.AnswerKeys``). A user-scoped answer lives under a path only a request carrying that
end user can build, so it can never be read by another user or by an anonymous caller; the shared key is
only ever written for requests the current policy routes as shared (its version is in the key). Every
chat response says the decision in ``x-edge-scope`` and ``Cache-Control`` (``max-age`` of the answer's
freshness lifetime with its ``stale-while-revalidate`` and ``stale-if-error`` windows, ``private`` for
user scope, ``no-store`` when nothing is kept; on a hit ``Age`` says how much of it has passed).

Who may overwrite. ``Cache-Control: no-cache`` (and ``max-age`` past the entry's age) only skips the
read: the fresh answer is written under the key of this exact request (every field that can change the
answer, the tenant, and the end user for user scope), so it can only replace an answer to the identical
question, and the origin writes only complete answers (``finish_reason: "stop"``, non-empty). A refresh
therefore never leaves the entry worse than it was: it is replaced by an equally complete answer or left
as it is. ``no-store`` neither reads nor writes.

A miss goes to the origin behind the circuit breaker; identical cacheable misses in this worker share
one call (``edge.coalesce``); a streamed answer is relayed as it arrives, with heartbeats while the
model is silent (``edge.streaming``); an ``async`` route or ``Prefer: respond-async`` becomes a job
(``edge.jobs``). Stored and canned answers are replayed as streams when the client asked for one.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from edge import errors, jobs, models, responses, streaming
from edge.auth import Authenticator, Principal
from edge.breaker import CircuitBreaker
from edge.coalesce import Coalescer
from edge.freshness import freshness, parse_cache_control
from edge.http import EdgeRequest, EdgeResponse, json_bytes, json_response
from edge.ids import REQUEST_IDS
from edge.parsing import LOCALE_HEADER, RequestParser, check_locale, is_json_media_type
from edge.ports import Background, Clock, KVStore, OriginClient, OriginRequest, OriginResponse, RateLimiter
from edge.ratelimit import rate_limit_headers, rate_limit_key
from edge.settings import EdgeSettings
from edge.timing import Timing
from shared import signing, sse, wire
from shared.cache_keys import AnswerKeys, key_scope
from shared.intent.routing import (
    CacheEverything,
    Intent,
    IntentClassifier,
    NoClassifier,
    Route,
    RoutePolicy,
)
from shared.jobs import JOB_ID_HEADER, JOB_KEY_HEADER, job_key
from shared.kv import KVError

CHAT_PATH = "/v1/chat/completions"
ORIGIN_CHAT_PATH = "/v1/chat/completions"
REFRESH_MARK_PREFIX = "rfr/"
REFRESH_MARK_TTL_S = 60  # Workers KV's minimum; a refresh that takes longer may be repeated once

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
    # Identical misses in flight share one origin call; the Worker passes Uncoalesced (edge.coalesce).
    coalescer: Coalescer = field(default_factory=Coalescer)
    # Which adapter serves this edge ("cpython": the emulator, "pyodide": the Workers entry point, "memory":
    # in-process rigs). Sent as x-edge-runtime and in /healthz, so a test can prove which runtime answered.
    runtime: str = "memory"

    def __post_init__(self) -> None:
        settings = self.settings
        self.auth = Authenticator(self.kv, self.clock, settings.jwt, frozenset(settings.tiers),
                                  settings.key_cache_ttl_s)
        self.versions = f"m:{self.classifier.version}|p:{self.policy.version}|t:{settings.prompt_version}"
        self.breaker = CircuitBreaker(self.clock.monotonic, failure_threshold=settings.breaker_failures,
                                      cooldown_s=settings.breaker_cooldown_s)
        # How requests were served, by route and fallback tier; read by metrics and tests.
        self.stats: Counter[str] = Counter()
        self._refreshing: set[str] = set()
        self.parser = RequestParser(default_model=settings.default_model,
                                    max_prompt_chars=settings.max_prompt_chars, versions=self.versions)
        self.models = models.ModelCatalog(self.clock.monotonic)

    async def handle(self, request: EdgeRequest) -> EdgeResponse:
        timing = Timing(self.clock.monotonic)
        request_id = wire.clean_request_id(request.headers.get(wire.REQUEST_ID_HEADER)) or REQUEST_IDS.new()
        try:
            if request.path == CHAT_PATH:
                _only("POST", request, CHAT_PATH)
                response = await self._chat(request, request_id, timing)
                if response.status == 200 and response.content_type.startswith(sse.MEDIA_TYPE):
                    response.body = streaming.shape_usage(response.body, _wants_usage(request.body))
            elif request.path == responses.PATH:
                _only("POST", request, responses.PATH)
                call = responses.ResponsesCall()  # the same pipeline, spoken as the Responses API
                response = call.adapt(await self._chat(request, request_id, timing, translate=call.translate))
            elif models.is_models_path(request.path):
                _only("GET", request, models.PATH)
                principal = await self.auth.authenticate(request.headers)
                limit_headers = await self._rate_limit(principal)
                response = await self.models.serve(request.path, self._fetch_models)
                response.headers += limit_headers
            elif request.path.startswith(jobs.JOBS_PATH):
                _only("GET", request, f"{jobs.JOBS_PATH}{{id}}")
                principal = await self.auth.authenticate(request.headers)
                limit_headers = await self._rate_limit(principal, "jobs")
                response = await jobs.job_status(self.kv, principal.tenant, request.path)
                response.headers += limit_headers
            elif request.path == "/healthz":
                response = json_response(200, {"status": "ok", "breaker": self.breaker.state,
                                                "runtime": self.runtime})
            else:
                raise errors.NotFound(f"no route for {request.method} {request.path}")
        except errors.EdgeError as exc:
            response = exc.to_response()
            if isinstance(exc, errors.Blocked):
                response.headers.append((wire.ROUTE_HEADER, "blocked"))
        if request.path in (CHAT_PATH, responses.PATH) and response.header(wire.SCOPE_HEADER) is None:
            # Errors, canned and uncached answers: nothing was kept for anyone.
            response.headers += [(wire.SCOPE_HEADER, "none"), ("cache-control", "no-store")]
        route = timing.route = response.header(wire.ROUTE_HEADER)
        if route:
            self.stats[route] += 1
        response.headers.append((wire.REQUEST_ID_HEADER, request_id))
        response.headers.append((wire.RUNTIME_HEADER, self.runtime))
        response.headers.append(("server-timing", timing.header()))
        if self.observer is not None:
            timing.stop()
            self.observer(request, response, timing, request_id)
        return response

    async def _chat(self, request: EdgeRequest, request_id: str, timing: Timing,
                    translate: Callable[[bytes], bytes] | None = None) -> EdgeResponse:
        """The chat pipeline; ``translate`` turns another API's body into a chat body after auth."""
        settings = self.settings
        # Who is asking comes first: an unauthenticated caller learns nothing about this edge's limits.
        principal = await self.auth.authenticate(request.headers)
        timing.mark("auth")
        timing.tenant = principal.tenant
        if not is_json_media_type(request.headers.get("content-type", "")):
            raise errors.UnsupportedMediaType("send the body as JSON with 'Content-Type: application/json'",
                                              code="unsupported_media_type")
        if len(request.body) > settings.max_body_bytes:
            raise errors.PayloadTooLarge(f"request body is over {settings.max_body_bytes} bytes, the most this "
                                         "edge accepts", code="body_too_large")
        limit_headers = await self._rate_limit(principal)
        timing.mark("ratelimit")

        try:
            chat_body = request.body if translate is None else translate(request.body)
            locale = check_locale(request.headers.get(LOCALE_HEADER, ""))
            chat, digest = self.parser.parse(chat_body, locale)
        except wire.WireError as exc:
            raise errors.BadRequest(str(exc), param=exc.param, code="invalid_request") from exc
        end_user = principal.end_user(chat.user, chat.user_field)
        keys = self.parser.keys_for(principal.tenant, end_user, digest)
        control = parse_cache_control(request.headers.get("cache-control"))
        timing.mark("parse")

        fallback: tuple[str, wire.CachedAnswer] | None = None
        if control.may_read:
            found = await self._lookup(keys)
            timing.mark("kv")
            if found is not None:
                key, cached = found
                now = self.clock.now()
                state = freshness(cached, now, control)
                if state == "error-only":
                    fallback = found
                elif state in ("fresh", "stale"):
                    served = self._from_cache(key, cached, "hit" if state == "fresh" else "stale", now,
                                              limit_headers, chat.stream)
                    if served is not None:
                        if state == "stale":
                            self._refresh_later(chat_body, principal, end_user, key, cached, request_id)
                        return served

        intent = self.classifier.classify(chat.prompt)
        route = self.policy.route(intent, chat.prompt)
        timing.mark("classify")
        if route.action == "block":
            raise errors.Blocked(f"this request was refused by the edge's policy ({route.reason or intent.label})",
                                 code="blocked_by_policy", headers=[(wire.INTENT_HEADER, intent.label)])
        if route.action == "edge" and route.answer is not None:
            return self._canned(route.answer, chat.model, "edge", intent, limit_headers, chat.stream)

        as_job = route.action == "async" or jobs.wants_async(request.headers)
        stream = chat.stream and not as_job
        store_key = None
        if route.action in ("cache", "async") and route.ttl_s and not control.no_store:
            store_key = keys.for_scope(route.scope)  # None for scope "none", or "user" with no known user
        origin_request = self._origin_request(chat_body, principal, end_user, store_key, intent, route,
                                              request_id, as_job=as_job, stream=stream)
        try:
            if as_job or store_key is None:
                upstream, joined = await self._call_origin(origin_request), False
            else:  # identical cacheable misses in this worker share one origin call
                # The origin's stream shape depends on include_usage: only identical shapes share a stream.
                shape = f"{int(stream)}|{int(sse.wants_usage(chat.raw))}"
                upstream, joined = await self.coalescer.send(f"{store_key}|{shape}",
                                                             lambda: self._call_origin(origin_request))
        except errors.UpstreamError as failure:
            timing.mark("origin")
            return self._fallback(failure, fallback, route, chat.model, intent, limit_headers, chat.stream)
        timing.mark("origin")
        if as_job and upstream.status == 202:
            response = jobs.accepted(origin_request.headers[JOB_ID_HEADER], await streaming.collect(upstream.body))
            response.headers += [(wire.ROUTE_HEADER, "async"), (wire.INTENT_HEADER, intent.label), *limit_headers]
            return response
        route_name = "miss" if upstream.status == 200 else "origin"
        headers = [(wire.ROUTE_HEADER, route_name), (wire.INTENT_HEADER, intent.label), *limit_headers]
        # The origin says when it would not keep the answer (truncated, say); a stream's fate is only known
        # at its end, after these headers: its answer is kept unless it ends incomplete.
        refused = upstream.headers.get(wire.WRITEBACK_HEADER, "").startswith("refused")
        if store_key is not None and route.ttl_s and upstream.status == 200 and not refused:
            keep = route.stale_if_error_s if route.stale_if_error_s is not None else settings.stale_if_error_s
            headers += self._scope_headers(key_scope(store_key), route.ttl_s, route.stale_s, keep)
        if joined:
            headers.append(("x-edge-coalesced", "1"))
        content_type = upstream.headers.get("content-type", "application/json")
        body = upstream.body
        if not isinstance(body, bytes | bytearray):
            if upstream.status == 200 and content_type.startswith(sse.MEDIA_TYPE):
                body = streaming.relay(body, heartbeat_s=settings.heartbeat_s)
            else:
                body = await streaming.collect(body)
        return EdgeResponse(upstream.status, body, headers, content_type=content_type)

    # ------------------------------------------------------------------ steps

    async def _rate_limit(self, principal: Principal, scope: str = "chat") -> list[tuple[str, str]]:
        tier = self.settings.tiers.get(principal.tier)
        if tier is None:
            raise errors.Forbidden(f"tier {principal.tier!r} is not configured on this edge", code="unknown_tier")
        decision = await self.limiter.acquire(rate_limit_key(principal.tenant, scope), tier.limit, tier.window_s)
        headers = rate_limit_headers(decision)
        if not decision.allowed:
            raise errors.RateLimited(f"rate limit of {tier.limit} requests per {tier.window_s}s exceeded for "
                                     "this tenant; retry after the time in Retry-After",
                                     code="rate_limit_exceeded", headers=headers)
        return headers

    async def _lookup(self, keys: AnswerKeys) -> tuple[str, wire.CachedAnswer] | None:
        """The stored answer for this request and asker, with the key it was found under.

        The scope is only known after classifying, so the shared key is read first and, only when it holds
        nothing and the end user is known, that user's own key. Shared hits, the common case, stay one
        read; the second read is paid by user-scoped hits and by misses, which then call the origin
        anyway. (Reading both concurrently cost every request that names a user ~10 µs more CPU in
        CPython for the task, and a second billed KV read, measured with ``eaves bench``.) Both keys
        cannot legitimately hold an answer: the policy's version is in the digest, and one policy gives
        one prompt one scope."""
        for key in (keys.shared, keys.user):
            if key is None:
                break
            entry = await self.kv.get(key)
            if entry is not None:
                cached = wire.CachedAnswer.from_kv(entry.value, entry.metadata)
                if cached is not None:
                    return key, cached
        return None

    @staticmethod
    def _scope_headers(scope: str, lifetime_s: int, stale_s: int = 0, keep_s: int = 0) -> list[tuple[str, str]]:
        # No "public": the request carried credentials, so shared proxies keep out (RFC 9111 §3.5) and
        # only the asker's own cache may keep it; "private" also says so for a user's own answer. The stale
        # windows are declared too (RFC 5861), so whoever reads the header sees how long the answer may be
        # served: stale-while-revalidate past max-age, stale-if-error past it when the origin fails.
        control = f"private, max-age={lifetime_s}" if scope == "user" else f"max-age={lifetime_s}"
        if stale_s > 0:
            control += f", stale-while-revalidate={stale_s}"
        if keep_s > 0:
            control += f", stale-if-error={keep_s}"
        return [(wire.SCOPE_HEADER, scope), ("cache-control", control)]

    def _from_cache(self, key: str, cached: wire.CachedAnswer, route: str, now: float,
                    limit_headers: list[tuple[str, str]], stream: bool) -> EdgeResponse | None:
        """The stored answer, or None when a stream was asked for and the stored body cannot be replayed as
        one (not a chat completion): then it is treated as absent, never as a crash.

        ``Cache-Control: max-age`` is the entry's freshness lifetime and ``Age`` how much of it has passed,
        so the remaining lifetime is their difference, as RFC 9111 §4.2.3 computes it."""
        lifetime = max(0, round(cached.fresh_until - cached.created))
        headers = [(wire.ROUTE_HEADER, route), (wire.INTENT_HEADER, cached.intent),
                   ("age", str(max(0, int(now - cached.created)))), *limit_headers,
                   *self._scope_headers(key_scope(key), lifetime, round(cached.stale_until - cached.fresh_until),
                                        round(cached.keep_until - cached.fresh_until))]
        if stream:  # a stored answer replayed as the stream the client asked for
            try:
                replayed = streaming.replay(cached.body)
            except ValueError:
                return None
            return EdgeResponse(200, replayed, headers, content_type=sse.MEDIA_TYPE)
        return EdgeResponse(200, cached.body, headers)

    def _canned(self, answer: str, model: str, route: str, intent: Intent,
                limit_headers: list[tuple[str, str]], stream: bool) -> EdgeResponse:
        body = json_bytes(wire.completion_body(answer, model=model))
        headers = [(wire.ROUTE_HEADER, route), (wire.INTENT_HEADER, intent.label), *limit_headers]
        if stream:
            return EdgeResponse(200, streaming.replay(body), headers, content_type=sse.MEDIA_TYPE)
        return EdgeResponse(200, body, headers)

    def _origin_request(self, body: bytes, principal: Principal, end_user: str, store_key: str | None,
                        intent: Intent, route: Route, request_id: str, *, as_job: bool = False,
                        stream: bool = False) -> OriginRequest:
        headers = {
            "content-type": "application/json",
            wire.TENANT_HEADER: principal.tenant,
            wire.CACHE_INTENT_HEADER: intent.label,
            wire.REQUEST_ID_HEADER: request_id,
        }
        self._add_user(headers, end_user, store_key)
        if store_key is not None and route.ttl_s:
            keep = route.stale_if_error_s if route.stale_if_error_s is not None else self.settings.stale_if_error_s
            headers.update(self._cache_headers(store_key, route.ttl_s, route.stale_s, keep))
        if as_job:
            job_id = jobs.new_job_id()
            headers[JOB_ID_HEADER] = job_id
            headers[JOB_KEY_HEADER] = job_key(principal.tenant, job_id)
        return self._signed(body, headers, route.timeout_s or self.settings.origin_timeout_s, stream)

    @staticmethod
    def _add_user(headers: dict[str, str], end_user: str, store_key: str | None) -> None:
        # The end user reaches the origin only when the answer is kept for nobody else: an answer stored
        # for the whole tenant must not be generated with (and so possibly about) one user's identity.
        if end_user and (store_key is None or key_scope(store_key) == "user"):
            headers[wire.USER_HEADER] = end_user

    @staticmethod
    def _cache_headers(key: str, ttl_s: int, stale_s: int, keep_s: int) -> dict[str, str]:
        return {wire.CACHE_KEY_HEADER: key, wire.CACHE_TTL_HEADER: str(ttl_s),
                wire.CACHE_STALE_HEADER: str(stale_s), wire.CACHE_KEEP_HEADER: str(keep_s)}

    def _signed(self, body: bytes, headers: dict[str, str], timeout_s: float, stream: bool = False) -> OriginRequest:
        # Signed: body, path and every x-eaves-* header; the origin refuses anything else.
        try:
            headers.update(signing.sign(self.settings.origin_secret, "POST", ORIGIN_CHAT_PATH, body,
                                        self.clock.now(), headers))
        except signing.SigningError as exc:  # the caller's data, not the origin: never a breaker failure
            raise errors.UnsendableRequest(f"this request cannot be forwarded to the origin: {exc}",
                                           code="unforwardable_request") from exc
        return OriginRequest(ORIGIN_CHAT_PATH, body, headers, timeout_s=timeout_s, stream=stream)

    async def _fetch_models(self) -> OriginResponse:
        headers = signing.sign(self.settings.origin_secret, "GET", models.ORIGIN_PATH, b"", self.clock.now())
        return await self._call_origin(OriginRequest(models.ORIGIN_PATH, b"", headers, method="GET",
                                                     timeout_s=self.settings.origin_timeout_s))

    async def _call_origin(self, request: OriginRequest) -> OriginResponse:
        """The origin behind the breaker: 5xx, timeouts and unreachability count as failures."""
        if not self.breaker.allow():
            raise errors.Unavailable("the edge has stopped calling the origin after repeated failures",
                                     code="circuit_open")
        try:
            upstream = await self.origin.send(request)
        except errors.UpstreamError:
            self.breaker.record_failure()
            raise
        except BaseException:
            self.breaker.record_neither()  # refused before it was sent: says nothing about the origin
            raise
        if upstream.status >= 500:
            self.breaker.record_failure()
            await streaming.collect(upstream.body)  # read (and so release) an error body that was streamed
            raise errors.UpstreamError(f"the origin failed with status {upstream.status}", code="origin_error")
        self.breaker.record_success()
        return upstream

    def _fallback(self, failure: errors.UpstreamError, found: tuple[str, wire.CachedAnswer] | None, route: Route,
                  model: str, intent: Intent, limit_headers: list[tuple[str, str]], stream: bool) -> EdgeResponse:
        """The origin could not answer: a stale answer, else the intent's canned answer, else a clear error."""
        headers = [(wire.FALLBACK_REASON_HEADER, failure.code)]
        stale = self._from_cache(*found, "stale", self.clock.now(), limit_headers, stream) if found else None
        if stale is not None:
            self.stats["fallback_stale"] += 1
            response = stale
        elif route.answer is not None:
            self.stats["fallback_canned"] += 1
            response = self._canned(route.answer, model, "fallback", intent, limit_headers, stream)
        else:
            self.stats["fallback_error"] += 1
            retry_after = math.ceil(self.breaker.retry_after_s()) or self.settings.error_retry_after_s
            failure.message = (f"{failure.message}; no cached or canned answer exists for this question. "
                               f"Retry after {retry_after} seconds.")
            response = failure.to_response()
            response.headers += [(wire.ROUTE_HEADER, "fallback"), (wire.INTENT_HEADER, intent.label),
                                 ("retry-after", str(retry_after)), *limit_headers]
        response.headers += headers
        return response

    # ------------------------------------------------------------------ stale-while-revalidate

    def _refresh_later(self, body: bytes, principal: Principal, end_user: str, key: str,
                       cached: wire.CachedAnswer, request_id: str) -> None:
        if key in self._refreshing:
            return  # one refresh at a time per key in this isolate
        self._refreshing.add(key)
        self.background.defer(self._refresh(body, principal, end_user, key, cached, request_id))

    async def _refresh(self, body: bytes, principal: Principal, end_user: str, key: str,
                       cached: wire.CachedAnswer, request_id: str) -> None:
        """Regenerate a stale entry under the key it was found at: the same request (the body that built
        that key), so the same tenant, scope, end user and parameters; the origin replaces it only with a
        complete answer."""
        mark = REFRESH_MARK_PREFIX + key
        try:
            # Across processes/isolates a short-lived KV mark keeps refreshes to about one per key.
            if await self.kv.get(mark) is not None:
                return
            await self.kv.put(mark, b"1", expiration_ttl=REFRESH_MARK_TTL_S)
            ttl = max(1, round(cached.fresh_until - cached.created))
            headers = {"content-type": "application/json", wire.TENANT_HEADER: principal.tenant,
                       wire.CACHE_INTENT_HEADER: cached.intent, wire.REQUEST_ID_HEADER: request_id + "-refresh",
                       **self._cache_headers(key, ttl, round(cached.stale_until - cached.fresh_until),
                                             round(cached.keep_until - cached.fresh_until))}
            self._add_user(headers, end_user, key)
            upstream = await self._call_origin(self._signed(body, headers, self.settings.origin_timeout_s))
            if not isinstance(upstream.body, bytes):
                async for _ in upstream.body:
                    pass
            self.stats["refreshed"] += 1
        except (errors.UpstreamError, KVError):
            self.stats["refresh_failed"] += 1  # the stale entry stays; the next stale hit tries again
        finally:
            self._refreshing.discard(key)


def _only(method: str, request: EdgeRequest, where: str) -> None:
    """Every route refuses another method the same way: 405 with ``Allow`` (RFC 9110 §15.5.6)."""
    if request.method != method:
        raise errors.MethodNotAllowed(f"{where} accepts {method} only", headers=[("allow", method)])


def _wants_usage(body: bytes) -> bool:
    """Whether a (valid: the pipeline parsed it) chat body asked for the usage chunk."""
    if b"include_usage" not in body:
        return False  # most streams: no second parse
    try:
        data = json.loads(body)
    except ValueError:
        return False
    return isinstance(data, dict) and sse.wants_usage(data)
