"""The Workers entry point (edge/entry.py) inside Pyodide: a JS Request in, a JS Response out, with the
real workers SDK, the KV fake and a real server on 127.0.0.1 as the origin."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import js
import pytest
from eaves_fakes import ExecutionContext, KvNamespace
from pyodide.ffi import JsException, to_js

import edge.entry
from edge.auth import KEY_PREFIX, api_key_hash, api_key_record, new_api_key
from edge.entry import Default
from edge.workers._js import js_object
from shared import wire


@pytest.fixture(autouse=True)
def fresh_isolate() -> Iterator[None]:
    edge.entry._edge = None  # each test is a new isolate
    yield
    edge.entry._edge = None


def worker_env(server: str, **extra: str) -> Any:
    values: dict[str, Any] = {"EAVES_KV": KvNamespace.new(), "EAVES_ORIGIN_URL": server,
                              "EAVES_ORIGIN_SECRET": "s" * 32, "EAVES_INTENT": "off", **extra}
    return js_object(values)


async def with_key(env: Any) -> str:
    key = new_api_key()
    record = api_key_record("acme", "pro", "test", time.time())
    await env.EAVES_KV.put(KEY_PREFIX + api_key_hash(key), to_js(record))
    return key


def chat(key: str, prompt: str, **fields: Any) -> Any:
    body = json.dumps({"messages": [{"role": "user", "content": prompt}], **fields})
    headers = js_object({"authorization": f"Bearer {key}", "content-type": "application/json"})
    return js.Request.new("https://edge.example/v1/chat/completions",
                          js_object({"method": "POST", "headers": headers, "body": body}))


async def call(env: Any, request: Any) -> tuple[Any, str]:
    ctx = ExecutionContext.new()
    response = (await Default(ctx, env).fetch(request)).js_object
    text = await response.text()
    await ctx.drain()
    return response, text


async def test_miss_goes_to_the_origin_signed_then_a_stored_answer_is_a_hit(server: str) -> None:
    env = worker_env(server)
    key = await with_key(env)
    response, text = await call(env, chat(key, "How do I cook rice?"))
    assert response.status == 200 and response.headers.get("x-edge-route") == "miss"
    forwarded = json.loads(text)  # the echo server's view of what the edge sent
    assert forwarded["path"] == "/v1/chat/completions"
    assert forwarded["headers"][wire.TENANT_HEADER] == "acme"
    assert wire.CACHE_KEY_HEADER in forwarded["headers"] and "x-eaves-signature" in forwarded["headers"]
    assert response.headers.get("x-edge-scope") == "shared"
    # The default policy's TTL and stale window (an hour, 300 s), then the edge's one-day stale-if-error.
    assert response.headers.get("cache-control") == "max-age=3600, stale-while-revalidate=300, stale-if-error=86400"

    app = edge.entry._edge
    assert app is not None
    _, digest = app.parser.parse(json.dumps({"messages": [{"role": "user", "content": "How do I cook rice?"}]}
                                            ).encode(), "")
    now = time.time()
    completion = json.dumps(wire.completion_body("Boil it.", model="eaves-default")).encode()
    stored = wire.CachedAnswer(completion, now, now + 600, "faq", now + 900, now + 3600)
    await app.kv.put(app.parser.keys_for("acme", "", digest).shared, stored.body, expiration_ttl=3600,
                     metadata=stored.metadata())
    hit, body = await call(env, chat(key, "How do I cook rice?\n"))
    assert hit.status == 200 and hit.headers.get("x-edge-route") == "hit"
    assert body.encode() == stored.body
    assert hit.headers.get("x-edge-scope") == "shared" and hit.headers.get("cache-control") == (
        "max-age=600, stale-while-revalidate=300, stale-if-error=3000")  # the stored entry's own deadlines
    assert "auth;dur=" in hit.headers.get("server-timing")

    streamed, events = await call(env, chat(key, "How do I cook rice?", stream=True))
    assert streamed.headers.get("content-type").startswith("text/event-stream")
    assert "Boil it." in events and events.rstrip().endswith("data: [DONE]")


async def test_a_user_scoped_answer_reaches_only_its_end_user(server: str) -> None:
    """In Pyodide too: a user-scoped entry is a hit for its end user only, marked private; another user
    and an anonymous caller go to the origin."""
    env = worker_env(server)
    key = await with_key(env)
    await call(env, chat(key, "warm up"))  # builds the isolate's edge
    app = edge.entry._edge
    assert app is not None
    _, digest = app.parser.parse(json.dumps({"messages": [{"role": "user", "content": "My orders?"}]}).encode(), "")
    own = app.parser.keys_for("acme", "alice", digest).user
    assert own is not None
    now = time.time()
    completion = json.dumps(wire.completion_body("Two parcels.", model="eaves-default")).encode()
    stored = wire.CachedAnswer(completion, now, now + 300, "orders")
    await app.kv.put(own, stored.body, expiration_ttl=3600, metadata=stored.metadata())
    hit, body = await call(env, chat(key, "My orders?", user="alice"))
    assert hit.headers.get("x-edge-route") == "hit" and body.encode() == stored.body
    assert hit.headers.get("x-edge-scope") == "user" and hit.headers.get("cache-control") == "private, max-age=300"
    for fields in ({"user": "bob"}, {}):
        other, text = await call(env, chat(key, "My orders?", **fields))
        assert other.headers.get("x-edge-route") == "miss" and "Two parcels." not in text


async def test_health_through_the_entry_point(server: str) -> None:
    response, text = await call(worker_env(server), js.Request.new("https://edge.example/healthz"))
    assert response.status == 200 and json.loads(text)["status"] == "ok"


async def test_refusals_are_json_with_their_headers(server: str) -> None:
    env = worker_env(server)
    unauthorized, text = await call(env, chat("eav_not-a-key", "hi"))
    assert unauthorized.status == 401 and json.loads(text)["error"]["code"] == "invalid_api_key"
    assert unauthorized.headers.get("www-authenticate").startswith("Bearer")
    key = await with_key(env)
    bad, text = await call(env, chat(key, ""))
    assert bad.status == 400 and json.loads(text)["error"]["type"] == "invalid_request_error"
    for refused in (unauthorized, bad):
        assert refused.headers.get("x-edge-scope") == "none" and refused.headers.get("cache-control") == "no-store"


async def test_a_missing_secret_is_a_clear_configuration_error(server: str) -> None:
    env = js_object({"EAVES_KV": KvNamespace.new(), "EAVES_ORIGIN_URL": server})
    response, text = await call(env, chat("eav_x", "hi"))
    assert response.status == 500
    error = json.loads(text)["error"]
    assert error["code"] == "edge_misconfigured" and "EAVES_ORIGIN_SECRET" in error["message"]


async def handle(request: Any, env: Any, ctx: Any) -> Any:
    """What the runtime calls for each request (serve.mjs does the same)."""
    return (await Default(ctx, env).fetch(request)).js_object


class TestCrossRequestIO:
    """workerd's rule, enforced by the local runtime (eaves/pyodide/iocontext.mjs): an I/O object belongs to
    the request that created it."""

    async def test_a_body_fetched_in_one_request_cannot_be_read_in_another(self, server: str) -> None:
        """Reading another request's fetch response throws workerd's error; its own request reads it."""
        from eaves_fakes import CROSS_REQUEST_MESSAGE, runInRequest

        fetched: dict[str, Any] = {}

        async def first() -> None:
            fetched["response"] = await js.fetch(server + "/status/200")

        async def second() -> str:
            try:
                return str(await fetched["response"].text())
            except JsException as exc:
                return str(exc)

        await runInRequest(first)
        refused = await runInRequest(second)
        assert refused.startswith("Error: " + CROSS_REQUEST_MESSAGE) and refused.endswith("(I/O type: Response)")

        async def own() -> str:
            response = await js.fetch(server + "/status/200")
            return str(await response.text())

        assert '"method": "GET"' in await runInRequest(own)

    async def test_coalescing_would_hand_one_requests_io_to_another(self, server: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
        """With edge coalescing on, the request that joins another's origin call is woken in the leader's
        context and answers with the leader's I/O: the runtime refuses it, as workerd would."""
        monkeypatch.setattr(edge.entry, "COALESCE", True)
        from eaves_fakes import serveRequest

        env = worker_env(server + "/slow")  # the origin takes a second: the second miss joins the first
        key = await with_key(env)
        leader, follower = await asyncio.gather(serveRequest(handle, chat(key, "How do I cook rice?"), env),
                                                serveRequest(handle, chat(key, "How do I cook rice?"), env),
                                                return_exceptions=True)
        assert not isinstance(leader, BaseException) and leader.status == 200
        assert isinstance(follower, JsException), follower
        assert "Cannot perform I/O on behalf of a different request" in str(follower)
        assert edge.entry._edge is not None and edge.entry._edge.coalescer.joined == 1

    async def test_the_worker_does_not_coalesce(self, server: str) -> None:
        """As deployed, identical misses in flight each make their own origin call, and both are served."""
        from eaves_fakes import serveRequest

        env = worker_env(server + "/slow")
        key = await with_key(env)
        first, second = await asyncio.gather(serveRequest(handle, chat(key, "How do I cook rice?"), env),
                                             serveRequest(handle, chat(key, "How do I cook rice?"), env))
        for result in (first, second):
            headers = result.headers.to_py()
            assert result.status == 200 and headers["x-edge-route"] == "miss"
            assert "x-edge-coalesced" not in headers
        app = edge.entry._edge
        assert app is not None and app.coalescer.led == 2 and app.coalescer.joined == 0


class TestImportTimeIntent:
    async def test_the_shipped_model_is_loaded_at_import_not_on_the_first_request(
            self, server: str, monkeypatch: pytest.MonkeyPatch) -> None:
        """The first request of an isolate reuses what the import loaded (inside deploy's snapshot): with
        loading made impossible, it is still classified."""
        from edge import bootstrap

        def no_loading(*_args: Any, **_kwargs: Any) -> Any:
            raise AssertionError("the first request loaded the intent model")

        monkeypatch.setattr(bootstrap, "load_intent", no_loading)
        env = worker_env(server)
        env.EAVES_INTENT = "on"
        key = await with_key(env)
        response, _ = await call(env, chat(key, "hello there"))
        assert response.status == 200 and response.headers.get("x-edge-intent")
        app = edge.entry._edge
        assert app is not None and app.classifier is edge.entry.SHIPPED_INTENT[0]

    async def test_another_model_or_policy_is_loaded_on_the_first_request(
            self, server: str, monkeypatch: pytest.MonkeyPatch) -> None:
        """A Worker whose env names its own policy gets it, loaded when its settings are first read."""
        from edge import bootstrap

        seen: list[dict[str, Any]] = []
        original = bootstrap.load_intent

        def recording(values: Any, runtime: str = "auto") -> Any:
            seen.append(dict(values))
            return original(values, runtime=runtime)

        monkeypatch.setattr(bootstrap, "load_intent", recording)
        env = worker_env(server)
        env.EAVES_INTENT = "on"
        env.EAVES_POLICY = "/repo/shared/intent/data/policy.toml"
        key = await with_key(env)
        response, _ = await call(env, chat(key, "hello there"))
        assert response.status == 200
        assert [v.get("EAVES_POLICY") for v in seen] == ["/repo/shared/intent/data/policy.toml"]


def store_answer(app: Any, prompt: str, *, age_s: float, ttl_s: float, stale_s: float, keep_s: float) -> Any:
    """A stored answer to ``prompt`` for tenant acme, generated ``age_s`` seconds ago."""
    _, digest = app.parser.parse(json.dumps({"messages": [{"role": "user", "content": prompt}]}).encode(), "")
    answer_key = app.parser.keys_for("acme", "", digest).shared
    created = time.time() - age_s
    completion = json.dumps(wire.completion_body("Stored answer.", model="eaves-default")).encode()
    stored = wire.CachedAnswer(completion, created, created + ttl_s, "faq", created + ttl_s + stale_s,
                               created + ttl_s + keep_s)
    return answer_key, stored


async def test_responses_say_they_came_from_pyodide(server: str) -> None:
    """The Workers adapter labels every response, and /healthz, with runtime "pyodide"."""
    env = worker_env(server)
    health, text = await call(env, js.Request.new("https://edge.example/healthz"))
    assert health.headers.get("x-edge-runtime") == "pyodide" and json.loads(text)["runtime"] == "pyodide"
    refused, _ = await call(env, chat("eav_not-a-key", "hi"))
    assert refused.headers.get("x-edge-runtime") == "pyodide"


async def test_a_stale_answer_is_served_and_refreshed_through_wait_until(server: str) -> None:
    """Past its TTL a stored answer is served at once as stale, and its refresh runs in ctx.waitUntil (the
    request's own work is done when the response is returned; the refresh is the one promise left)."""
    env = worker_env(server)
    key = await with_key(env)
    await call(env, chat(key, "warm up"))  # builds the isolate's EdgeApp
    app = edge.entry._edge
    assert app is not None
    answer_key, stored = store_answer(app, "What are your hours?", age_s=120, ttl_s=60, stale_s=600, keep_s=3600)
    await app.kv.put(answer_key, stored.body, expiration_ttl=3600, metadata=stored.metadata())
    ctx = ExecutionContext.new()
    response = (await Default(ctx, env).fetch(chat(key, "What are your hours?"))).js_object
    assert response.headers.get("x-edge-route") == "stale" and int(response.headers.get("age")) >= 120
    assert "Stored answer." in await response.text()
    assert app.stats["refreshed"] == 0  # not yet: it waits in waitUntil
    assert await ctx.drain() == 1
    assert app.stats["refreshed"] == 1


async def test_an_unreachable_origin_falls_back_to_stale_then_the_breaker_opens(server: str) -> None:
    """With the origin unreachable: a known question gets its old answer (stale, origin_unreachable), new
    ones get 502, and after EAVES_BREAKER_FAILURES of them a 503 circuit_open with Retry-After."""
    env = worker_env("http://127.0.0.1:1", EAVES_BREAKER_FAILURES="2", EAVES_BREAKER_COOLDOWN_S="30")
    key = await with_key(env)
    await call(env, chat(key, "warm up"))  # one failure already
    app = edge.entry._edge
    assert app is not None
    answer_key, stored = store_answer(app, "What are your hours?", age_s=5000, ttl_s=60, stale_s=60, keep_s=86400)
    await app.kv.put(answer_key, stored.body, expiration_ttl=86400, metadata=stored.metadata())
    stale, text = await call(env, chat(key, "What are your hours?"))
    assert stale.status == 200 and stale.headers.get("x-edge-route") == "stale"
    assert stale.headers.get("x-edge-fallback-reason") == "origin_unreachable" and "Stored answer." in text
    assert app.breaker.state == "open"
    refused, text = await call(env, chat(key, "a new question"))
    assert refused.status == 503 and json.loads(text)["error"]["code"] == "circuit_open"
    assert refused.headers.get("x-edge-fallback-reason") == "circuit_open"
    assert 0 < int(refused.headers.get("retry-after")) <= 30


async def test_a_canned_fallback_when_nothing_is_cached(server: str) -> None:
    """A policy route's canned answer stands in when the origin fails and nothing is stored."""
    with open("/tmp/eaves-fallback-policy.toml", "w") as handle:
        handle.write('version = "fallback-1"\n[default]\naction = "cache"\nttl_s = 60\nstale_s = 60\n'
                     'answer = "We are busy; please try again shortly."\n')
    env = worker_env("http://127.0.0.1:1", EAVES_INTENT="on", EAVES_POLICY="/tmp/eaves-fallback-policy.toml")
    key = await with_key(env)
    response, text = await call(env, chat(key, "How do I cook rice?"))
    assert response.status == 200 and response.headers.get("x-edge-route") == "fallback"
    assert json.loads(text)["choices"][0]["message"]["content"] == "We are busy; please try again shortly."
    assert response.headers.get("x-edge-runtime") == "pyodide"
