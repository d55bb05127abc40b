"""Graceful degradation against a real origin process that is slowed, made to fail, killed and restarted."""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from eaves.stack import Stack, kill_server, restart_server, running_stack
from shared.kv_lmdb import LmdbKV
from shared.local_stack import LocalStack
from tests.integration.conftest import create_key, edge_args, served_by

pytestmark = pytest.mark.integration

ENV = {"EAVES_INTENT": "off", "EAVES_SIM_TTFT_MS": "10", "EAVES_BREAKER_FAILURES": "3",
       "EAVES_BREAKER_COOLDOWN_S": "1", "EAVES_ERROR_RETRY_AFTER_S": "2"}


def ask(stack: Stack, key: str, prompt: str, **headers: str) -> httpx.Response:
    """One chat request; the response must come from the edge runtime the stack runs (``stack.runtime``)."""
    assert stack.edge
    response = httpx.post(stack.edge.url + "/v1/chat/completions", timeout=60,
                          json={"messages": [{"role": "user", "content": prompt}]},
                          headers={"authorization": f"Bearer {key}", **headers})
    return served_by(response, RUNNING[id(stack)])


# The runtime each running stack was started with, so ask() can check every response against it.
RUNNING: dict[int, str] = {}


@contextlib.contextmanager
def stack_on(runtime: str, data_dir: Path, env: dict[str, str]) -> Iterator[Stack]:
    with running_stack(data_dir, env=env, edge_args=edge_args(runtime)) as stack:
        RUNNING[id(stack)] = runtime
        try:
            yield stack
        finally:
            del RUNNING[id(stack)]


def origin_requests(stack: Stack) -> int:
    """Requests the origin has accepted so far (its /healthz)."""
    assert stack.origin
    return int(httpx.get(stack.origin.url + "/healthz", timeout=10, headers=stack.operator_headers).json()["requests"])


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    """Poll for an event; the timeout only turns a hang into a failure."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def answer_keys(data_dir: Path) -> list[str]:
    items, _ = LmdbKV(LocalStack(data_dir).kv_path).list(prefix="ans/")
    return [name for name, _, _ in items]


def test_origin_killed_mid_generation_then_restarted(tmp_path: Path, runtime: str) -> None:
    """Killing the origin mid-generation gives a clear error, leaves no partial entry, and a restart recovers."""
    env = {**ENV, "EAVES_SIM_TTFT_MS": "600000"}  # the generation is still running when the origin dies
    with stack_on(runtime, tmp_path, env) as stack:
        assert stack.origin
        key = create_key(tmp_path, "crash")
        before = origin_requests(stack)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(ask, stack, key, "a slow question")
            wait_until(lambda: origin_requests(stack) > before, "the question to reach the origin")
            kill_server(stack.origin)
            response = pending.result(timeout=20)
        assert response.status_code == 502
        assert response.headers["x-edge-route"] == "fallback"
        assert response.json()["error"]["code"] in ("origin_unreachable", "origin_stream_broken")
        assert answer_keys(tmp_path) == []
        stack.origin.env = {**(stack.origin.env or {}), "EAVES_SIM_TTFT_MS": "10"}
        restart_server(stack.origin)
        assert ask(stack, key, "after the restart").headers["x-edge-route"] == "miss"


def test_stale_if_error_and_breaker_with_dead_origin(tmp_path: Path, runtime: str) -> None:
    """With the origin down: known questions get their old answer, new ones fail fast, then the breaker opens;
    after a restart one probe closes it."""
    with stack_on(runtime, tmp_path, ENV) as stack:
        assert stack.origin
        key = create_key(tmp_path, "outage")
        fresh = ask(stack, key, "known question")
        assert fresh.headers["x-edge-route"] == "miss"
        kill_server(stack.origin)

        # max-age=0 makes the cached answer too old to be a hit, so the edge must try the (dead) origin first.
        stale = ask(stack, key, "known question", **{"cache-control": "max-age=0"})
        assert stale.status_code == 200 and stale.headers["x-edge-route"] == "stale"
        assert stale.json() == fresh.json()

        failures = [ask(stack, key, f"new question {i}") for i in range(2)]
        assert [r.status_code for r in failures] == [502, 502]
        refused = ask(stack, key, "new question while open")
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "circuit_open"
        assert refused.headers["x-edge-fallback-reason"] == "circuit_open"  # answered without trying the origin
        assert refused.headers["retry-after"] == "1"
        still_known = ask(stack, key, "known question", **{"cache-control": "max-age=0"})
        assert still_known.headers["x-edge-route"] == "stale"
        assert still_known.headers["x-edge-fallback-reason"] == "circuit_open"

        restart_server(stack.origin)
        time.sleep(1.1)
        assert ask(stack, key, "probe question").headers["x-edge-route"] == "miss"
        health = httpx.get(stack.edge.url + "/healthz").json()
        assert health["breaker"] == "closed" and health["runtime"] == runtime


def test_slow_origin_serves_stale_at_the_timeout(tmp_path: Path, runtime: str) -> None:
    """An origin slower than the timeout budget: the old answer is served when the budget runs out, not when the
    origin finishes (it would take ten minutes, longer than the client waits)."""
    with stack_on(runtime, tmp_path, {**ENV, "EAVES_ORIGIN_TIMEOUT_S": "0.4"}) as stack:
        assert stack.origin
        key = create_key(tmp_path, "slow")
        fresh = ask(stack, key, "patient question")
        assert fresh.status_code == 200
        stack.origin.env = {**(stack.origin.env or {}), "EAVES_SIM_TTFT_MS": "600000"}
        restart_server(stack.origin)
        response = ask(stack, key, "patient question", **{"cache-control": "max-age=0"})
        assert response.headers["x-edge-route"] == "stale" and response.json() == fresh.json()
        assert response.headers["x-edge-fallback-reason"] == "origin_timeout"
        assert int(response.headers["age"]) >= 0
        kill_server(stack.origin)  # its generation would hold a graceful shutdown for the full stop timeout


def test_failing_origin_is_covered(tmp_path: Path, runtime: str) -> None:
    """An origin whose model always fails (500s) trips the breaker like a dead one and writes nothing."""
    with stack_on(runtime, tmp_path, {**ENV, "EAVES_SIM_FAIL_RATE": "1"}) as stack:
        key = create_key(tmp_path, "broken")
        statuses = [ask(stack, key, f"q{i}").status_code for i in range(4)]
        assert statuses == [502, 502, 502, 503]
        assert answer_keys(tmp_path) == []


def test_origin_killed_mid_stream_then_restarted(tmp_path: Path, runtime: str) -> None:
    """SIGKILL of the origin while it streams: the client sees an SSE error event (no hang, no clean end), the
    KV keeps nothing of the half answer, and after a restart the same question streams whole, then hits."""
    env = {**ENV, "EAVES_SIM_TTFT_MS": "10", "EAVES_SIM_TOKENS_PER_S": "30", "EAVES_SIM_ANSWER_TOKENS": "60",
           "EAVES_HEARTBEAT_S": "30"}
    body = {"stream": True, "messages": [{"role": "user", "content": "a long streamed answer"}]}
    with stack_on(runtime, tmp_path, env) as stack:
        assert stack.origin and stack.edge
        key = create_key(tmp_path, "stream-crash")
        url = stack.edge.url + "/v1/chat/completions"
        headers = {"authorization": f"Bearer {key}"}
        events: list[str] = []
        with httpx.stream("POST", url, json=body, headers=headers, timeout=30) as response:
            assert response.status_code == 200 and response.headers["x-edge-route"] == "miss"
            assert response.headers["x-edge-runtime"] == runtime
            for line in response.iter_lines():
                if line.startswith("data: "):
                    events.append(line[6:])
                if len(events) == 5:
                    kill_server(stack.origin)
        assert len(events) > 5 and "[DONE]" not in events
        last = json.loads(events[-1])
        assert last["error"]["code"] in ("origin_stream_broken", "origin_stream_truncated")
        assert answer_keys(tmp_path) == []

        restart_server(stack.origin)
        time.sleep(1.1)  # the breaker's cooldown, in case the kill counted as a failure
        fast = {**body, "messages": [{"role": "user", "content": "a short streamed answer"}]}
        whole = served_by(httpx.post(url, json=fast, headers=headers, timeout=30), runtime)
        assert whole.headers["x-edge-route"] == "miss"
        assert whole.text.rstrip().endswith("data: [DONE]")
        again = served_by(httpx.post(url, json=fast, headers=headers, timeout=30), runtime)
        assert again.headers["x-edge-route"] == "hit" and again.text.rstrip().endswith("data: [DONE]")
