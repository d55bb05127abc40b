"""The origin's admission: refused before the body is read, read only up to the limit, each signed
request served once (across worker processes), and no usage figures for strangers."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from edge.memory import MemoryKV
from origin.app import OriginState, build_app
from origin.generators.simulator import SimulatedGenerator
from origin.replay import LmdbReplayGuard, MemoryReplayGuard
from origin.writeback import KVAnswerWriter
from shared import signing, wire
from tests.origin.test_app import BODY, SECRET, signed_headers
from tests.world import body_of, make_world

PATH = "/v1/chat/completions"


def state(**kwargs: Any) -> OriginState:
    sim = SimulatedGenerator(ttft_s=0.0, tokens_per_s=0.0)
    return OriginState(generator=sim, writer=KVAnswerWriter(MemoryKV()), secret=SECRET, **kwargs)


async def call(app: Any, headers: dict[str, str], chunks: list[bytes]) -> tuple[int, dict[str, Any], int]:
    """One request through the raw ASGI interface; returns (status, JSON body, body bytes the app read)."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": PATH, "raw_path": PATH.encode(), "query_string": b"", "root_path": "",
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2)}
    pending = list(chunks)
    read = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal read
        if not pending:
            return {"type": "http.disconnect"}
        chunk = pending.pop(0)
        read += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body), read


MIB = 1 << 20


class TestRefusedBeforeReading:
    async def test_an_unsigned_48_mib_upload_is_refused_without_reading_it(self) -> None:
        """No signature headers: 401 before a byte of the body is read."""
        app = build_app(state())
        chunks = [b"x" * MIB] * 48
        status, body, read = await call(app, {"content-type": "application/json", "content-length": str(48 * MIB)},
                                        chunks)
        assert status == 401 and body["error"]["code"] == "invalid_signature" and read == 0

    async def test_a_stale_timestamp_is_refused_without_reading(self) -> None:
        """An old signature (outside the window) is judged from its headers alone."""
        app = build_app(state())
        headers = {"content-type": "application/json", "content-length": str(len(BODY)),
                   **signing.sign(SECRET, "POST", PATH, BODY, time.time() - 3600, {})}
        status, _, read = await call(app, headers, [BODY])
        assert status == 401 and read == 0

    async def test_a_declared_length_over_the_limit_is_a_413_without_reading(self) -> None:
        """Signature headers present, Content-Length too big: 413 at once."""
        app = build_app(state(max_body_bytes=1024))
        headers = {**signed_headers(), "content-length": str(10 * MIB)}
        status, body, read = await call(app, headers, [b"x" * MIB] * 10)
        assert status == 413 and body["error"]["code"] == "body_too_large" and read == 0

    async def test_an_undeclared_streamed_body_stops_at_the_limit(self) -> None:
        """Chunked upload without Content-Length: reading stops one chunk past the limit."""
        app = build_app(state(max_body_bytes=64 * 1024))
        status, _, read = await call(app, signed_headers(), [b"x" * 16 * 1024] * 1000)
        assert status == 413 and read <= 64 * 1024 + 16 * 1024

    async def test_a_bad_content_length_is_a_400(self) -> None:
        """Content-Length that is not a decimal count of bytes is refused as such."""
        app = build_app(state())
        status, body, _ = await call(app, {**signed_headers(), "content-length": "-5"}, [BODY])
        assert status == 400 and body["error"]["code"] == "invalid_content_length"

    async def test_a_non_ascii_signature_is_a_401_not_a_crash(self) -> None:
        """hmac.compare_digest refuses non-ASCII str; the comparison is on bytes, so this is a plain 401."""
        app = build_app(state())
        headers = {**signed_headers(), signing.SIGNATURE_HEADER: "v1=é"}
        raw = [(k.encode(), v.encode("latin-1")) for k, v in headers.items()]
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://o")
        async with client:
            response = await client.post(PATH, content=BODY, headers=raw)
        assert response.status_code == 401


class TestReplays:
    async def test_each_signed_request_is_served_once(self) -> None:
        """The same signed request sent again within its window: 401, no second generation."""
        origin = state()
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=build_app(origin)), base_url="http://o")
        headers = signed_headers()
        async with client:
            first = await client.post(PATH, content=BODY, headers=headers)
            again = await client.post(PATH, content=BODY, headers=headers)
        assert first.status_code == 200 and again.status_code == 401
        assert "replay" in again.json()["error"]["message"]
        assert origin.generator.generations == 1  # type: ignore[attr-defined]

    async def test_a_request_without_a_nonce_is_refused(self) -> None:
        """A v1 signature without the nonce header (an older edge) is refused, naming the header."""
        app = build_app(state())
        headers = signed_headers()
        del headers[signing.NONCE_HEADER]
        status, body, _ = await call(app, headers, [BODY])
        assert status == 401 and signing.NONCE_HEADER in body["error"]["message"]

    def test_the_lmdb_guard_is_shared_across_processes(self, tmp_path: Path) -> None:
        """A nonce recorded by one process is refused in another that opens the same directory."""
        nonce = "0" * 32
        assert LmdbReplayGuard(tmp_path).first_use(nonce, time.time() + 60)
        code = ("import sys, time; from origin.replay import LmdbReplayGuard; "
                f"g = LmdbReplayGuard({str(tmp_path)!r}); "
                f"sys.exit(0 if not g.first_use({nonce!r}, time.time() + 60) and g.first_use('1' * 32, "
                "time.time() + 60) else 1)")
        assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0

    def test_expired_nonces_are_reclaimed(self, tmp_path: Path) -> None:
        """Nonces past their window are swept as new ones arrive: the store stops growing."""
        now = [1000.0]
        guard = LmdbReplayGuard(tmp_path, clock=lambda: now[0])
        memory = MemoryReplayGuard(clock=lambda: now[0])
        for i in range(20_000):
            now[0] += 0.1
            assert guard.first_use(f"{i:032x}", now[0] + 60) and memory.first_use(f"{i:032x}", now[0] + 60)
        assert len(guard) < 2_000 and len(memory) < 2_000  # 600 live (60 s at 10/s) plus sweep slack

    async def test_the_edge_signs_every_send_afresh(self) -> None:
        """Refreshes and no-cache repeats of one question each reach the origin as a new signed request."""
        world = await make_world()
        for _ in range(3):
            response = await world.chat("same question", headers={"cache-control": "no-cache"})
            assert response.status == 200, body_of(response)
        assert world.simulator.generations == 3


class TestOperatorFigures:
    async def test_healthz_shows_totals_only_with_the_metrics_token(self) -> None:
        """Usage and cost counters and /metrics need the operator's token."""
        app = build_app(state(metrics_token="tok"))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://o") as client:
            public = (await client.get("/healthz")).json()
            private = (await client.get("/healthz", headers={"authorization": "Bearer tok"})).json()
            scrape = await client.get("/metrics")
            wrong = await client.get("/metrics", headers={"authorization": "Bearer nope"})
        assert public["status"] == "ok" and "generations" not in public and "in_flight" not in public
        assert "generations" in private
        assert scrape.status_code == wrong.status_code == 401
        assert scrape.json()["error"]["code"] == "metrics_token_required"


def test_wire_request_ids() -> None:
    """Usable ids are kept; anything else is None (the caller generates one)."""
    assert wire.clean_request_id("req-1.a:b/c=") == "req-1.a:b/c="
    for bad in (None, "", "é", "a b", "x" * 129, "a\nb", 'a"b'):
        assert wire.clean_request_id(bad) is None
