"""Fuzz the edge in-process, on the memory runtime (edge core + the real origin app over ASGI) and
through the emulator's ASGI front (LMDB KV, real origin app): whatever arrives, no 5xx while the origin
is healthy, every error is JSON with an error object and a request id, and a refused request writes
nothing to the KV."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.emulator.adapters import AsyncLmdbKV, HttpxOriginClient
from edge.emulator.asgi import EdgeASGI
from edge.http import EdgeRequest, EdgeResponse
from edge.jwt import JwtConfig, JwtKey
from edge.memory import ManualClock
from origin.app import OriginState, build_app
from origin.generators.simulator import SimulatedGenerator
from origin.writeback import KVAnswerWriter
from shared.kv_lmdb import LmdbKV
from shared.local_stack import LocalStack
from tests.fuzz.strategies import bodies, budget, extra_headers, header_value, jwt_claims, jwt_headers, jwt_mangle
from tests.tokens import mint
from tests.world import World, make_world

JWT_SECRET = "fuzz-jwt-secret-0123456789abcdef0123"

PATHS = st.sampled_from(["/v1/chat/completions"] * 6 + ["/v1/jobs/job_" + "0" * 32, "/v1/jobs/x", "/healthz",
                                                         "/nope", "/v1/chat/completions/"])
METHODS = st.sampled_from(["POST"] * 6 + ["GET", "PUT", "DELETE"])
CREDENTIALS = st.sampled_from(["good", "good", "good", "none", "both", "random", "jwt", "jwt"])


def check(status: int, content_type: str, body: bytes, request_id: str | None) -> dict[str, Any] | None:
    """The response's error object (None for a success); fails on a 5xx or a non-JSON error."""
    assert status < 500, body[:300]
    assert request_id, "every response carries x-request-id"
    if status < 400:
        return None
    assert content_type.startswith("application/json"), (status, content_type, body[:200])
    error = json.loads(body)["error"]
    assert isinstance(error, dict) and error["message"] and error["type"], body[:300]
    return error


def fuzz_jwt(claims: dict[str, Any], header: dict[str, Any], mangle: str, now: float) -> str:
    claims = {"tenant": "acme", "tier": "pro", "exp": now + 600, **claims}
    token = mint(claims, secret=JWT_SECRET, header=header)
    head, payload, signature = token.split(".")
    if mangle == "pad":
        return token + "=="
    if mangle == "standard":
        return f"{head}.{payload}.{signature.replace('-', '+').replace('_', '/')}"
    if mangle == "junk-signature":
        return f"{head}.{payload}.{signature[::-1]}é"
    if mangle == "junk-header":
        return f"eyJ{payload}.{head}.{signature}"
    return token


# Minted at the manual clocks' start (edge.memory.ManualClock), so the default exp is in the future.
jwts = st.builds(fuzz_jwt, jwt_claims, jwt_headers, jwt_mangle, st.just(ManualClock().now()))


def credential_headers(kind: str, good: str, token: str) -> list[tuple[str, str]]:
    if kind == "jwt":
        return [("authorization", f"Bearer {token}")]
    if kind == "good":
        return [("authorization", f"Bearer {good}")]
    if kind == "both":
        return [("authorization", f"Bearer {good}"), ("x-api-key", token or "other")]
    if kind == "random":
        return [("authorization", token)]
    return []


request_parts = st.tuples(METHODS, PATHS, bodies, extra_headers, CREDENTIALS, header_value, jwts)


@budget(300)
@given(request_parts)
def test_memory_runtime_survives_anything(parts: tuple[str, str, bytes, list[tuple[str, str]], str, str, str]
                                         ) -> None:
    """Edge core on the memory runtime with the real origin app behind it; JWTs on."""
    method, path, body, extra, kind, token, jwt = parts
    token = jwt if kind == "jwt" else token

    async def run() -> None:
        world: World = await make_world(jwt=JwtConfig(keys=[JwtKey("HS256", secret=JWT_SECRET.encode())]),
                                        clock=ManualClock())
        headers = dict([("content-type", "application/json"), *credential_headers(kind, world.keys["acme"], token)])
        for name, value in extra:  # repeated fields joined, as the adapters deliver them
            headers[name] = f"{headers[name]}, {value}" if name in headers and name != "content-type" else value
        writes = world.kv.writes
        response: EdgeResponse = await world.edge.handle(EdgeRequest(method, path, headers, body))
        raw = response.body if isinstance(response.body, bytes) else b"".join([c async for c in response.body])
        for _name, value in response.headers:
            value.encode("latin-1")  # every header is sendable
        await world.edge.background.drain()  # type: ignore[attr-defined]
        if check(response.status, response.content_type, raw, response.header("x-request-id")) is not None:
            assert world.kv.writes == writes, "a refused request wrote to the KV"

    asyncio.run(run())


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> tuple[EdgeASGI, LmdbKV, str]:
    data_dir: Path = tmp_path_factory.mktemp("emulator")
    stack = LocalStack(data_dir)
    store = LmdbKV(stack.kv_path)
    origin = OriginState(generator=SimulatedGenerator(ttft_s=0.0, tokens_per_s=0.0),
                         writer=KVAnswerWriter(AsyncLmdbKV(store)), secret=stack.origin_secret())
    app = EdgeASGI(data_dir, {"EAVES_INTENT": "off", "EAVES_LOG": "off"})
    edge = app._ensure()
    edge.origin = HttpxOriginClient("http://origin.test", transport=httpx.ASGITransport(app=build_app(origin)))
    from edge.auth import KEY_PREFIX, api_key_hash, api_key_record

    key = "eav_fuzz_key"
    store.put(KEY_PREFIX + api_key_hash(key), api_key_record("fuzz", "enterprise", "f", 0))
    return app, store, key


def stored(store: LmdbKV) -> int:
    return sum(len(store.list(prefix=prefix, limit=1000)[0]) for prefix in ("ans/", "job/"))


@budget(200)
@given(request_parts)
def test_emulator_front_survives_anything(emulator: tuple[EdgeASGI, LmdbKV, str],
                                         parts: tuple[str, str, bytes, list[tuple[str, str]], str, str, str]) -> None:
    """The emulator's ASGI app, raw header bytes and repeated fields included."""
    app, store, key = emulator
    method, path, body, extra, kind, token, jwt = parts
    token = jwt if kind == "jwt" else token
    raw_headers = [(b"content-type", b"application/json")]
    raw_headers += [(n.encode(), v.encode("latin-1")) for n, v in credential_headers(kind, key, token)]
    raw_headers += [(n.encode(), v.encode("latin-1")) for n, v in extra]
    scope = {"type": "http", "method": method, "path": path, "query_string": b"", "headers": raw_headers,
             "client": ("127.0.0.1", 1)}
    chunks = [body[i:i + 4096] for i in range(0, len(body), 4096)] or [b""]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        chunk = chunks.pop(0) if chunks else b""
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    before = stored(store)
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    headers = dict(start["headers"])
    raw = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    request_id = headers.get(b"x-request-id", b"").decode()
    if check(start["status"], headers[b"content-type"].decode(), raw, request_id) is not None:
        assert stored(store) == before, "a refused request wrote to the KV"
