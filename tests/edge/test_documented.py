"""README promises that had no test of their own: key revocation through `eaves keys revoke`, version bumps,
earlier turns in the key, `Age`, the runtime header, the data directory's secret file, and the switches
that turn logs and metrics off. Each expected value comes from the README, not from the code under test."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge.app import EdgeApp
from edge.emulator.adapters import AsyncLmdbKV, HttpxOriginClient
from edge.emulator.asgi import EdgeASGI
from edge.http import EdgeRequest
from edge.memory import ManualClock, MemoryRateLimiter, TaskBackground
from edge.settings import EdgeSettings
from shared.intent.routing import Intent, Route
from shared.kv_lmdb import LmdbKV
from shared.local_stack import LocalStack
from tests.world import SECRET, World, make_world


def cli(*args: str) -> str:
    """`eaves ...` as a user runs it."""
    result = subprocess.run([sys.executable, "-m", "eaves.cli", *args], capture_output=True, text=True, check=True)
    return result.stdout


def sibling(world: World, **changes: Any) -> EdgeApp:
    """Another edge on the same KV, origin and clock, with some settings, model or policy changed."""
    edge = world.edge
    parts: dict[str, Any] = {"settings": edge.settings, "classifier": edge.classifier, "policy": edge.policy}
    parts.update(changes)
    return EdgeApp(parts["settings"], world.kv, edge.origin, MemoryRateLimiter(world.clock), world.clock,
                   TaskBackground(), parts["classifier"], parts["policy"])


class Labelled:
    """An intent model that calls everything "faq", with a version string."""

    def __init__(self, version: str) -> None:
        self.version = version

    def classify(self, text: str) -> Intent:
        return Intent("faq", "support", 0.99)


class Cached:
    """A policy that caches every intent for ttl_s (then stale_s), with a version string."""

    def __init__(self, version: str, ttl_s: int = 600, stale_s: int = 600) -> None:
        self.version, self.ttl_s, self.stale_s = version, ttl_s, stale_s

    def route(self, intent: Intent, text: str = "") -> Route:
        return Route("cache", ttl_s=self.ttl_s, stale_s=self.stale_s)


async def ask(edge: EdgeApp, world: World, prompt: str = "q", **body: Any) -> str:
    payload = {"model": "m", "messages": [{"role": "user", "content": prompt}], **body}
    response = await edge.handle(EdgeRequest("POST", "/v1/chat/completions", {
        "content-type": "application/json", "authorization": f"Bearer {world.keys['acme']}"},
        json.dumps(payload).encode()))
    return response.header("x-edge-route") or str(response.status)


class TestVersionBumps:
    @pytest.mark.parametrize("change", ["model", "policy", "prompt"])
    async def test_a_version_bump_turns_hits_into_misses(self, change: str) -> None:
        """A new intent-model, policy or EAVES_PROMPT_VERSION never serves the old answers: a miss where the
        unchanged edge, on the same KV, still hits."""
        world = await make_world(classifier=Labelled("model-1"), policy=Cached("policy-1"))
        assert await ask(world.edge, world) == "miss"
        bumped = {
            "model": {"classifier": Labelled("model-2")},
            "policy": {"policy": Cached("policy-2")},
            "prompt": {"settings": EdgeSettings.from_mapping({"EAVES_PROMPT_VERSION": "2",
                                                              "EAVES_ORIGIN_SECRET": SECRET.decode()})},
        }[change]
        assert await ask(sibling(world), world) == "hit"  # the control: same versions, same KV
        assert await ask(sibling(world, **bumped), world) == "miss"
        assert await ask(world.edge, world) == "hit"  # the old versions still read their own answers


class TestConversationKey:
    async def test_earlier_turns_are_part_of_the_key(self) -> None:
        """The same last question after a different conversation is a different question; after the same
        conversation it is a hit."""
        world = await make_world()

        def turns(first: str) -> list[dict[str, str]]:
            return [{"role": "user", "content": first}, {"role": "assistant", "content": "Sure."},
                    {"role": "user", "content": "and how long does it take?"}]

        assert await ask(world.edge, world, messages=turns("How do I cook rice?")) == "miss"
        assert await ask(world.edge, world, messages=turns("How do I cook rice?")) == "hit"
        assert await ask(world.edge, world, messages=turns("How do I renew a passport?")) == "miss"
        system = [{"role": "system", "content": "Answer in French."}, *turns("How do I cook rice?")]
        assert await ask(world.edge, world, messages=system) == "miss"


class TestAge:
    async def test_hits_and_stale_answers_carry_their_age(self) -> None:
        """`Age` is the seconds since the answer was generated, on a hit and on a stale answer."""
        world = await make_world(policy=Cached("p", ttl_s=60, stale_s=600))
        await world.chat("q")
        world.clock.advance(42.5)  # half a second off the boundary: the clock starts at a fractional time
        hit = await world.chat("q")
        assert (hit.header("x-edge-route"), hit.header("age")) == ("hit", "42")
        world.clock.advance(100)
        stale = await world.chat("q")
        assert (stale.header("x-edge-route"), stale.header("age")) == ("stale", "142")


class TestRuntimeHeader:
    async def test_every_response_names_the_runtime_and_healthz_too(self) -> None:
        """x-edge-runtime is on answers, errors and /healthz; in-process rigs say "memory"."""
        world = await make_world()
        answer, refused = await world.chat("q"), await world.chat("q", key="nobody")
        health = await world.chat(method="GET", path="/healthz")
        assert refused.status == 401
        assert {r.header("x-edge-runtime") for r in (answer, refused, health)} == {"memory"}
        assert isinstance(health.body, bytes) and json.loads(health.body)["runtime"] == "memory"

    async def test_the_emulator_says_cpython(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The CPython emulator's adapter labels its responses "cpython"."""
        monkeypatch.setenv("EAVES_INTENT", "off")
        app = EdgeASGI(tmp_path, {"EAVES_METRICS": "off", "EAVES_LOG": "off"})
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://edge") as client:
            health = await client.get("/healthz")
        assert health.headers["x-edge-runtime"] == "cpython" and health.json()["runtime"] == "cpython"


class TestKeyRevocation:
    async def test_a_revoked_key_stops_working_within_30_seconds(self, tmp_path: Path) -> None:
        """`eaves keys revoke` on the data directory: an edge that had the key cached refuses it once the
        README's 30 s have passed (default settings, the emulator's LMDB store, a manual clock)."""
        key = cli("keys", "create", "--tenant", "acme", "--tier", "pro", "--data-dir", str(tmp_path)).strip()
        clock = ManualClock(start=time.time())
        edge = EdgeApp(EdgeSettings(origin_secret=SECRET), AsyncLmdbKV(LmdbKV(LocalStack(tmp_path).kv_path)),
                       HttpxOriginClient("http://127.0.0.1:9"), MemoryRateLimiter(clock), clock, TaskBackground())

        async def status() -> int:
            # A job lookup authenticates first: 404 (no such job) means the key was accepted.
            response = await edge.handle(EdgeRequest("GET", "/v1/jobs/job_0123456789abcdef0123",
                                                     {"authorization": f"Bearer {key}"}))
            return response.status

        assert await status() == 404
        cli("keys", "revoke", key, "--data-dir", str(tmp_path))
        clock.advance(30.5)
        assert await status() == 401


class TestDataDirectory:
    def test_the_signing_secret_file_is_private(self, tmp_path: Path) -> None:
        """eaves.json (the edge-origin signing secret) is created with mode 0600, whatever the umask."""
        previous = os.umask(0)
        try:
            secret = LocalStack(tmp_path / "data").origin_secret()
        finally:
            os.umask(previous)
        mode = stat.S_IMODE((tmp_path / "data" / "eaves.json").stat().st_mode)
        assert mode == 0o600 and len(secret) >= 32


class TestSwitches:
    async def run_emulator(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                           environ: dict[str, str]) -> tuple[httpx.Response, httpx.Response]:
        monkeypatch.setenv("EAVES_INTENT", "off")
        app = EdgeASGI(tmp_path, environ)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://edge") as client:
            chat = await client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]},
                                     headers={"authorization": "Bearer eav_unknown"})
            token = LocalStack(tmp_path).metrics_token()  # /metrics answers only the operator's token
            metrics = await client.get("/metrics", headers={"authorization": f"Bearer {token}"})
        await app.aclose()  # a clean stop: buffered log lines are written
        return chat, metrics

    @pytest.mark.parametrize("value", ["on", "off"])
    async def test_eaves_log(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str], value: str) -> None:
        """EAVES_LOG=off stops the emulator's per-request JSON lines; on, each request writes one."""
        chat, _ = await self.run_emulator(tmp_path, monkeypatch, {"EAVES_LOG": value})
        assert chat.status_code == 401
        lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
        requests = [json.loads(line) for line in lines if '"service":"edge"' in line]
        assert len(requests) == (1 if value == "on" else 0)

    @pytest.mark.parametrize("value", ["on", "off"])
    async def test_eaves_metrics(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
        """EAVES_METRICS=off removes the emulator's /metrics (404); on, it counts the request just made."""
        _, metrics = await self.run_emulator(tmp_path, monkeypatch, {"EAVES_METRICS": value, "EAVES_LOG": "off"})
        if value == "off":
            assert metrics.status_code == 404
        else:
            assert metrics.status_code == 200 and "eaves_edge_requests_total{" in metrics.text

    @pytest.mark.parametrize("value", ["on", "off"])
    async def test_origin_log(self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                              value: str) -> None:
        """EAVES_LOG=off stops the origin's per-request JSON lines too."""
        from origin.app import OriginState, build_app
        from origin.generators.simulator import SimulatedGenerator
        from origin.writeback import NoWriter

        monkeypatch.setenv("EAVES_LOG", value)
        app = build_app(OriginState(generator=SimulatedGenerator(ttft_s=0.0), writer=NoWriter(), secret=SECRET))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://origin") as client:
            assert (await client.get("/healthz")).status_code == 200
        lines = [line for line in capsys.readouterr().out.splitlines() if '"service":"origin"' in line]
        assert len(lines) == (1 if value == "on" else 0)
