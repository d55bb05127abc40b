"""Origin metrics and request log: tokens and cost counted, the edge's request id carried through."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from origin import metrics
from origin.app import OriginState, build_app
from origin.generators.simulator import SimulatedGenerator
from origin.writeback import NoWriter
from tests.origin.test_app import BODY, SECRET, signed_headers


def value(text: str, prefix: str) -> float:
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_generation_counts_tokens_and_cost_and_logs_request_id(capsys: pytest.CaptureFixture[str]) -> None:
    """A generation adds its tokens and estimated cost; the log line and the response carry x-request-id."""
    sim = SimulatedGenerator(ttft_s=0.0, tokens_per_s=0.0, answer_tokens=8)
    app = build_app(OriginState(generator=sim, writer=NoWriter(), secret=SECRET, metrics_token="tok"))
    scrape = {"authorization": "Bearer tok"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://o") as client:
        before = (await client.get("/metrics", headers=scrape)).text
        response = await client.post("/v1/chat/completions", content=BODY,
                                     headers=signed_headers(extra={"x-request-id": "req-42", "x-eaves-tenant": "t"}))
        after = (await client.get("/metrics", headers=scrape)).text
    assert response.status_code == 200 and response.headers["x-request-id"] == "req-42"
    completion = 'eaves_origin_tokens_total{kind="completion"}'
    assert value(after, completion) - value(before, completion) == 8
    cost = "eaves_origin_estimated_cost_usd_total"
    assert value(after, cost) > value(before, cost)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    chat = [line for line in lines if line["path"] == "/v1/chat/completions"]
    assert chat == [{**chat[0], "request_id": "req-42", "tenant": "t", "status": 200, "service": "origin"}]


async def test_an_unsigned_request_is_not_logged_under_the_tenant_it_claims(
        capsys: pytest.CaptureFixture[str]) -> None:
    """The signature is what proves the tenant: a refused request's x-eaves-tenant is logged as claimed only."""
    app = build_app(OriginState(generator=SimulatedGenerator(), writer=NoWriter(), secret=SECRET))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://o") as client:
        response = await client.post("/v1/chat/completions", content=BODY,
                                     headers={"content-type": "application/json", "x-eaves-tenant": "victim"})
    assert response.status_code == 401
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    chat = [line for line in lines if line["path"] == "/v1/chat/completions"]
    assert [(line["tenant"], line["claimed_tenant"], line["status"]) for line in chat] == [("", "victim", 401)]


def test_estimated_cost_uses_prices_per_million(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cost is tokens times the price per million tokens: by default USD 0.50 for prompt and 1.50 for completion
    tokens (the README's placeholders), else EAVES_PRICE_PROMPT_PER_MTOK / EAVES_PRICE_COMPLETION_PER_MTOK."""
    monkeypatch.delenv("EAVES_PRICE_PROMPT_PER_MTOK", raising=False)
    monkeypatch.delenv("EAVES_PRICE_COMPLETION_PER_MTOK", raising=False)
    assert metrics.estimated_cost(1_000_000, 0) == pytest.approx(0.50)
    assert metrics.estimated_cost(2_000, 1_000) == pytest.approx(2_000 * 0.50e-6 + 1_000 * 1.50e-6)
    monkeypatch.setenv("EAVES_PRICE_PROMPT_PER_MTOK", "3")
    monkeypatch.setenv("EAVES_PRICE_COMPLETION_PER_MTOK", "15")
    assert metrics.estimated_cost(1_000, 100) == pytest.approx(1_000 * 3e-6 + 100 * 15e-6)


def test_one_worker_exports_its_counts_when_the_directory_is_set_after_import(tmp_path: Path) -> None:
    """As a one-worker `eaves origin` runs: prometheus_client is imported before PROMETHEUS_MULTIPROC_DIR
    is set, and /metrics must still show the process's own counts (it used to render the empty directory)."""
    script = textwrap.dedent(f"""
        import os
        from origin import metrics
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = {str(tmp_path)!r}
        metrics.REQUESTS.labels("/v1/chat/completions", "200").inc()
        metrics.writeback("written")
        print(metrics.render().decode())
    """)
    env = {k: v for k, v in os.environ.items() if k.upper() != "PROMETHEUS_MULTIPROC_DIR"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True,
                         timeout=60, cwd=Path(__file__).resolve().parents[2]).stdout
    assert value(out, 'eaves_origin_requests_total{path="/v1/chat/completions",status="200"}') == 1
    assert value(out, 'eaves_origin_writebacks_total{result="written"}') == 1
