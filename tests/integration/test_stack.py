"""The whole request path with real servers: edge emulator and origin on 127.0.0.1, real LMDB."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import openai
import pytest

from eaves.stack import Stack, kill_server, running_stack
from tests.integration.conftest import create_key, edge_args, served_by, until_both_workers_served

pytestmark = pytest.mark.integration


def origin_generations(stack: Stack) -> int:
    assert stack.origin
    return int(httpx.get(stack.origin.url + "/healthz", headers=stack.operator_headers).json()["generations"])


def test_openai_client_miss_then_hit(stack: Stack, stack_dir: Path, runtime: str) -> None:
    """The official openai client gets an answer (miss), then the same answer from the KV (hit), origin idle."""
    assert stack.edge
    key = create_key(stack_dir, "acme")
    client = openai.OpenAI(base_url=stack.edge.url + "/v1", api_key=key)
    messages = [{"role": "user", "content": "What are your opening hours?"}]
    first = client.chat.completions.with_raw_response.create(model="eaves-default", messages=messages)  # type: ignore[arg-type]
    assert first.headers["x-edge-route"] == "miss" and first.headers["x-edge-runtime"] == runtime
    answer = first.parse().choices[0].message.content
    assert answer
    before = origin_generations(stack)
    second = client.chat.completions.with_raw_response.create(model="eaves-default", messages=messages)  # type: ignore[arg-type]
    assert second.headers["x-edge-route"] == "hit" and second.headers["x-edge-runtime"] == runtime
    assert second.parse().choices[0].message.content == answer
    assert origin_generations(stack) == before
    assert "kv;dur=" in second.headers["server-timing"]


def test_second_tenant_gets_own_answer(stack: Stack, stack_dir: Path, runtime: str) -> None:
    """Another tenant asking the same question is a miss: it never sees the first tenant's entry."""
    assert stack.edge
    keys = [create_key(stack_dir, tenant) for tenant in ("t-one", "t-two")]
    body = {"messages": [{"role": "user", "content": "Tell me a secret about my account"}]}
    routes = []
    for key in keys:
        response = httpx.post(stack.edge.url + "/v1/chat/completions", json=body,
                              headers={"authorization": f"Bearer {key}"})
        routes.append(served_by(response, runtime).headers["x-edge-route"])
    assert routes == ["miss", "miss"]


def test_tenant_ids_are_checked_where_they_are_created(stack: Stack, stack_dir: Path, runtime: str) -> None:
    """`eaves keys create` refuses a tenant id outside the rule (it would otherwise need a second, hashed
    encoding that another tenant could imitate) and stores nothing; an id using every allowed character class
    gets a miss, then a hit, over real HTTP."""
    assert stack.edge
    refused = subprocess.run([sys.executable, "-m", "eaves.cli", "keys", "create", "--tenant", "Zoë 東京",
                              "--tier", "pro", "--data-dir", str(stack_dir)], capture_output=True, text=True)
    assert refused.returncode == 2 and refused.stdout == "" and "A-Z, a-z, 0-9" in refused.stderr
    key = create_key(stack_dir, "Zoe.Tokyo_2-b")
    body = {"messages": [{"role": "user", "content": "Where is my parcel?"}]}
    routes = [served_by(httpx.post(stack.edge.url + "/v1/chat/completions", json=body, timeout=30,
                                   headers={"authorization": f"Bearer {key}"}), runtime).headers["x-edge-route"]
              for _ in range(2)]
    assert routes == ["miss", "hit"]


def test_servers_neither_name_themselves_nor_take_forwarded_addresses(stack: Stack, stack_dir: Path) -> None:
    """No ``server`` header on either server, and an X-Forwarded-For from a local client changes nothing
    (uvicorn's proxy-headers middleware is off: it was per-request work, and any local client could
    claim any address through it)."""
    assert stack.origin
    key = create_key(stack_dir, "acme")
    body = {"model": "m", "messages": [{"role": "user", "content": "What is a lighthouse?"}]}
    plain = httpx.post(stack.edge.url + "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"})
    forwarded = httpx.post(stack.edge.url + "/v1/chat/completions", json=body,
                           headers={"authorization": f"Bearer {key}", "x-forwarded-for": "203.0.113.9",
                                    "x-forwarded-proto": "https"})
    assert plain.status_code == forwarded.status_code == 200
    assert forwarded.headers["x-edge-route"] == "hit"
    for response in (plain, forwarded, httpx.get(stack.edge.url + "/healthz"),
                     httpx.get(stack.origin.url + "/healthz")):
        assert "server" not in response.headers


def test_origin_refuses_unsigned(stack: Stack) -> None:
    """Calling the origin directly, around the edge, gets 401 with a JSON error."""
    assert stack.origin
    before = origin_generations(stack)
    response = httpx.post(stack.origin.url + "/v1/chat/completions",
                          json={"messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_signature"
    assert origin_generations(stack) == before


@pytest.mark.parametrize("content, headers, status, code", [
    (b"{broken", {}, 400, "invalid_request"),
    (b'{"messages": [{"role": "user", "content": ""}]}', {}, 400, "invalid_request"),
    (b'{"messages": [{"role": "user", "content": "hi"}]}', {"content-type": "text/plain"}, 415,
     "unsupported_media_type"),
    (b"x" * (300 * 1024), {}, 413, "body_too_large"),
    (b'{"messages": [{"role": "user", "content": "hi"}]}', {"authorization": "Bearer nope"}, 401, "invalid_api_key"),
])
def test_bad_requests_over_http(stack: Stack, stack_dir: Path, runtime: str, content: bytes,
                                headers: dict[str, str], status: int, code: str) -> None:
    """Each bad request gets its status and a JSON error over real HTTP."""
    assert stack.edge
    sent = {"content-type": "application/json", "authorization": f"Bearer {create_key(stack_dir, 'bad')}", **headers}
    response = served_by(httpx.post(stack.edge.url + "/v1/chat/completions", content=content, headers=sent), runtime)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_rate_limit_shared_across_worker_processes(tmp_path: Path) -> None:
    """With two edge worker processes the tenant's budget is shared: exactly `limit` requests pass, and both
    processes served requests (each counts what it served in its own metrics file), so separate per-process
    budgets would have let more through. CPython only: one Pyodide isolate is one process."""
    env = {"EAVES_TIERS": json.dumps({"pro": {"limit": 6, "window_s": 60}}), "EAVES_SIM_TTFT_MS": "0",
           "EAVES_INTENT": "off"}
    with running_stack(tmp_path, env=env, edge_workers=2) as stack:
        assert stack.edge
        edge_url = stack.edge.url
        key = create_key(tmp_path, "limited")
        statuses: list[int] = []

        def send(count: int) -> int:
            for _ in range(count):
                # A fresh connection each time, so the kernel may hand it to either worker.
                question = {"messages": [{"role": "user", "content": f"question {len(statuses)}"}]}
                with httpx.Client() as client:
                    response = client.post(edge_url + "/v1/chat/completions", json=question,
                                           headers={"authorization": f"Bearer {key}"})
                    statuses.append(served_by(response, "cpython").status_code)
            return count

        until_both_workers_served(tmp_path, send(12), lambda: send(6))
        assert statuses == [200] * 6 + [429] * (len(statuses) - 6)  # within one 60 s window


def test_one_worker_keeps_its_rate_limit_counts_across_a_restart(tmp_path: Path) -> None:
    """One edge worker counts in memory (edge.emulator.counters); a clean stop writes the counts back, so the
    restarted edge goes on from them: 4 + 4 requests against a limit of 6 in one window give 6 x 200."""
    from eaves.stack import restart_server

    env = {"EAVES_TIERS": json.dumps({"pro": {"limit": 6, "window_s": 60}}), "EAVES_SIM_TTFT_MS": "0",
           "EAVES_INTENT": "off"}
    with running_stack(tmp_path, env=env, edge_workers=1) as stack:
        assert stack.edge
        key = create_key(tmp_path, "limited")
        statuses: list[int] = []

        def send(count: int) -> None:
            assert stack.edge
            for _ in range(count):
                question = {"messages": [{"role": "user", "content": f"question {len(statuses)}"}]}
                response = httpx.post(stack.edge.url + "/v1/chat/completions", json=question,
                                      headers={"authorization": f"Bearer {key}"})
                statuses.append(served_by(response, "cpython").status_code)

        send(4)
        restart_server(stack.edge)
        send(4)
        assert statuses == [200] * 6 + [429] * 2  # within one 60 s window


def test_origin_down_gives_502_quickly(tmp_path: Path, runtime: str) -> None:
    """An edge whose origin is not listening answers 502 origin_unreachable with a JSON error at once, not after
    its 30 s origin timeout (which would be a 504 origin_timeout)."""
    from eaves.stack import free_port, start_server, stop_server, wait_healthy

    key = create_key(tmp_path, "lonely")
    port = free_port()
    edge = start_server("edge", ["edge", "--edge-port", str(port), "--data-dir", str(tmp_path),
                                 "--origin", f"http://127.0.0.1:{free_port()}", *edge_args(runtime)],
                        f"http://127.0.0.1:{port}", tmp_path / "logs", {"EAVES_INTENT": "off"})
    try:
        wait_healthy(edge)
        response = httpx.post(edge.url + "/v1/chat/completions",
                              json={"messages": [{"role": "user", "content": "anyone there?"}]},
                              headers={"authorization": f"Bearer {key}"}, timeout=25)
        assert served_by(response, runtime).status_code == 502
        assert response.json()["error"]["code"] == "origin_unreachable"
    finally:
        stop_server(edge)


def test_slow_origin_gives_504_within_timeout(tmp_path: Path, runtime: str) -> None:
    """An origin slower than the edge's timeout gives 504 at the timeout, not when the origin finishes: the
    origin here would take ten minutes, longer than the client waits."""
    env = {"EAVES_INTENT": "off", "EAVES_SIM_TTFT_MS": "600000", "EAVES_ORIGIN_TIMEOUT_S": "0.5"}
    with running_stack(tmp_path, env=env, edge_args=edge_args(runtime)) as stack:
        assert stack.edge
        key = create_key(tmp_path, "impatient")
        response = httpx.post(stack.edge.url + "/v1/chat/completions",
                              json={"messages": [{"role": "user", "content": "take your time"}]},
                              headers={"authorization": f"Bearer {key}"}, timeout=60)
        assert served_by(response, runtime).status_code == 504
        assert response.json()["error"]["code"] == "origin_timeout"
        assert stack.origin
        kill_server(stack.origin)  # its generation would hold a graceful shutdown for the full stop timeout
