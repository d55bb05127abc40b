"""Metrics and logs on real servers with two worker processes each: counts add up, request ids join.

CPython only: the Pyodide edge is one isolate in one Node process (no --workers), and it has no /metrics or
per-request log lines of its own (on Workers those are Cloudflare's analytics and Logpush)."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import httpx
import pytest

from eaves.stack import running_stack
from tests.integration.conftest import create_key, served_by, until_both_workers_served

pytestmark = pytest.mark.integration


def route_counts(url: str, headers: dict[str, str]) -> dict[str, float]:
    text = urllib.request.urlopen(urllib.request.Request(url + "/metrics", headers=headers), timeout=10).read().decode()
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("eaves_edge_requests_total{"):
            route = line.split('route="', 1)[1].split('"', 1)[0]
            counts[route] = counts.get(route, 0.0) + float(line.rsplit(" ", 1)[1])
    return counts


def chat_counts(url: str, headers: dict[str, str]) -> dict[str, float]:
    return {route: count for route, count in route_counts(url, headers).items() if route != "other"}


def test_two_workers_metrics_sum_and_request_id_reaches_origin_log(tmp_path: Path) -> None:
    """With 2 edge and 2 origin workers, /metrics counts every request once and both logs share request ids."""
    key = create_key(tmp_path, "obs", "pro")
    env = {"EAVES_SIM_TTFT_MS": "5", "EAVES_SIM_TOKENS_PER_S": "5000", "EAVES_INTENT": "off"}
    with running_stack(tmp_path, env=env, edge_workers=2, origin_workers=2) as stack:
        assert stack.edge and stack.origin
        headers = {"authorization": f"Bearer {key}"}

        def ask(question: int) -> httpx.Response:
            # a fresh connection each time, so the kernel may hand it to either worker
            response = httpx.post(stack.edge.url + "/v1/chat/completions", headers=headers,
                                  json={"messages": [{"role": "user", "content": f"question {question}"}]})
            assert served_by(response, "cpython").status_code == 200
            return response

        with httpx.Client(base_url=stack.edge.url, timeout=30) as client:
            for i in range(30):
                response = ask(i % 10)
            last_id = response.headers["x-request-id"]
            assert client.post("/v1/chat/completions", headers={"authorization": "Bearer eav_bad"},
                               json={"messages": [{"role": "user", "content": "x"}]}).status_code == 401
        extra_hits = 0

        def more_hits() -> int:
            nonlocal extra_hits
            for _ in range(5):
                ask(0)
            extra_hits += 5
            return 5

        until_both_workers_served(tmp_path, 31, more_hits)
        expected = {"miss": 10.0, "hit": 20.0 + extra_hits, "unauthorized": 1.0}
        deadline = time.monotonic() + 10
        # /healthz (the stack's readiness probe) counts under "other"; only the chat routes matter here.
        scrape = stack.operator_headers
        while (counts := chat_counts(stack.edge.url, scrape)) != expected and time.monotonic() < deadline:
            time.sleep(0.3)  # other workers flush their counts about once a second
        assert counts == expected
        origin_metrics = urllib.request.urlopen(urllib.request.Request(stack.origin.url + "/metrics",
                                                                       headers=stack.operator_headers),
                                                timeout=10).read().decode()
        assert 'eaves_origin_generations_total{generator="simulator"} 10.0' in origin_metrics
        assert 'eaves_origin_writebacks_total{result="written"} 10.0' in origin_metrics
    edge_lines = [json.loads(line) for line in (tmp_path / "logs" / "edge.log").read_text().splitlines()
                  if line.startswith("{")]
    origin_lines = [json.loads(line) for line in (tmp_path / "logs" / "origin.log").read_text().splitlines()
                    if line.startswith("{")]
    misses = {line["request_id"] for line in edge_lines if line["route"] == "miss"}
    at_origin = {line["request_id"] for line in origin_lines if line["path"] == "/v1/chat/completions"}
    assert len(misses) == 10 and misses == at_origin
    assert any(line["request_id"] == last_id and line["route"] == "hit" for line in edge_lines)
    assert key not in (tmp_path / "logs" / "edge.log").read_text()


def test_one_worker_stack_exports_origin_and_edge_metrics(tmp_path: Path) -> None:
    """`eaves up`'s default (one worker each): the origin's /metrics counts its generation and write-back."""
    key = create_key(tmp_path, "obs1", "pro")
    env = {"EAVES_SIM_TTFT_MS": "5", "EAVES_SIM_TOKENS_PER_S": "5000", "EAVES_INTENT": "off"}
    with running_stack(tmp_path, env=env) as stack:
        assert stack.edge and stack.origin
        response = httpx.post(stack.edge.url + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                              json={"messages": [{"role": "user", "content": "one worker"}]}, timeout=30)
        assert response.status_code == 200 and response.headers["x-edge-route"] == "miss"
        scrape = urllib.request.Request(stack.origin.url + "/metrics", headers=stack.operator_headers)
        origin_metrics = urllib.request.urlopen(scrape, timeout=10).read().decode()
        assert 'eaves_origin_generations_total{generator="simulator"} 1.0' in origin_metrics
        assert 'eaves_origin_writebacks_total{result="written"} 1.0' in origin_metrics
        assert chat_counts(stack.edge.url, stack.operator_headers) == {"miss": 1.0}


def test_edge_log_keeps_every_line_across_a_clean_stop(tmp_path: Path) -> None:
    """The edge batches its log writes; stopping it (SIGTERM, as `eaves up` and Ctrl-C do) writes every line:
    one per request, none lost, even those answered just before the stop."""
    key = create_key(tmp_path, "logs", "pro")
    env = {"EAVES_SIM_TTFT_MS": "1", "EAVES_INTENT": "off", "EAVES_TIERS": '{"pro": {"limit": 100000, "window_s": 60}}',
           "EAVES_LOG_FLUSH_S": "60"}  # so that only the stop itself can write the last lines
    with running_stack(tmp_path, env=env) as stack:
        assert stack.edge
        with httpx.Client(base_url=stack.edge.url, timeout=30, headers={"authorization": f"Bearer {key}"}) as client:
            ids = [client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "same"}]},
                               headers={"x-request-id": f"req-{i}"}).headers["x-request-id"] for i in range(120)]
    lines = [json.loads(line) for line in (tmp_path / "logs" / "edge.log").read_text().splitlines()
             if line.startswith("{")]
    logged = [line["request_id"] for line in lines if line["path"] == "/v1/chat/completions"]
    assert logged == ids
