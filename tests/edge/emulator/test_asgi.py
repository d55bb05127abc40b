"""The emulator's ASGI front: built from the settings it is given, and its /metrics fed by production code."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from eaves.stack import free_port
from edge import metrics as edge_metrics
from edge.auth import KEY_PREFIX, api_key_hash, api_key_record
from edge.emulator.asgi import EdgeASGI, _send_response
from edge.http import EdgeResponse
from shared.intent.routing import NoClassifier
from shared.kv_lmdb import LmdbKV, close_env
from shared.local_stack import LocalStack

KEY = "eav_test_asgi_front"


def edge_settings(origin_url: str, **extra: str) -> dict[str, str]:
    return {"EAVES_INTENT": "off", "EAVES_LOG": "off", "EAVES_ORIGIN_URL": origin_url,
            "EAVES_ORIGIN_SECRET": "test-signing-secret-0123456789abcdef", "EAVES_BREAKER_FAILURES": "2",
            "EAVES_ORIGIN_TIMEOUT_S": "2", **extra}


def add_key(data_dir: Path) -> None:
    path = LocalStack(data_dir).kv_path
    LmdbKV(path).put(KEY_PREFIX + api_key_hash(KEY), api_key_record("acme", "pro", "test", time.time()))
    close_env(path)


async def call(app: EdgeASGI, method: str, path: str, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    # /metrics answers the operator's token only; every other path a client's API key.
    secret = LocalStack(app._data_dir).metrics_token() if path == "/metrics" else KEY
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8787),
             "headers": [(b"authorization", f"Bearer {secret}".encode()), (b"content-type", b"application/json")]}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    headers = {k.decode(): v.decode() for k, v in sent[0]["headers"]}
    return sent[0]["status"], headers, b"".join(m.get("body", b"") for m in sent[1:])


def test_intent_setting_comes_from_the_given_settings_not_the_process(tmp_path: Path, monkeypatch: Any) -> None:
    """EAVES_INTENT=off in the settings handed to the app is obeyed even when the process says otherwise."""
    monkeypatch.setenv("EAVES_INTENT", "on")
    app = EdgeASGI(tmp_path, edge_settings("http://127.0.0.1:9"))
    edge = app._ensure()
    assert isinstance(edge.classifier, NoClassifier)


async def test_metrics_count_fallbacks_and_breaker_state_from_a_dead_origin(tmp_path: Path) -> None:
    """An unreachable origin shows in /metrics as fallbacks by reason and an open breaker, without any
    code on the request path reporting them."""
    add_key(tmp_path)
    dead_origin = f"http://127.0.0.1:{free_port()}"
    fresh = edge_metrics.EdgeMetrics()
    app = EdgeASGI(tmp_path, edge_settings(dead_origin))
    assert app.metrics is not None
    app.metrics.metrics = fresh
    try:
        for i in range(3):
            body = json.dumps({"messages": [{"role": "user", "content": f"question {i}"}]}).encode()
            status, headers, _ = await call(app, "POST", "/v1/chat/completions", body)
            assert status in (502, 503) and headers["x-edge-route"] == "fallback"
        status, _, text = await call(app, "GET", "/metrics")
    finally:
        if app._origin is not None:
            await app._origin.aclose()
    assert status == 200
    lines = text.decode().splitlines()
    assert 'eaves_edge_fallbacks_total{reason="origin_unreachable"} 2.0' in lines
    assert 'eaves_edge_fallbacks_total{reason="circuit_open"} 1.0' in lines
    assert 'eaves_edge_breaker_state{breaker="origin",state="open"} 1.0' in lines


@settings(max_examples=200, deadline=None)
@given(headers=st.lists(st.tuples(st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=20),
                                  st.text(st.characters(max_codepoint=255), max_size=40)), max_size=12))
def test_response_headers_go_out_as_latin_1(headers: list[tuple[str, str]]) -> None:
    """Every header name and value reaches ASGI as its Latin-1 bytes, in order, whatever shortcut encodes it."""
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(_send_response(EdgeResponse(200, b"{}", list(headers)), send))
    expected = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers if k != "content-type"]
    assert sent[0]["headers"][:len(expected)] == expected


async def test_a_bad_log_flush_interval_fails_startup_with_a_message(tmp_path: Path) -> None:
    """EAVES_LOG_FLUSH_S that is not a number of seconds stops the emulator at startup, saying which setting."""
    app = EdgeASGI(tmp_path, edge_settings("http://127.0.0.1:9", EAVES_LOG="on", EAVES_LOG_FLUSH_S="soon"))
    sent: list[dict[str, Any]] = []
    messages = iter([{"type": "lifespan.startup"}])

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({"type": "lifespan"}, receive, send)
    assert sent[0]["type"] == "lifespan.startup.failed" and "EAVES_LOG_FLUSH_S" in sent[0]["message"]
