"""Real servers on 127.0.0.1: the stack started exactly as `eaves up` starts it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from eaves.stack import Stack, running_stack
from tests.node_tools import NODE_MODULES, PYODIDE_SITE, require

# The HTTP tests that take the `runtime` fixture run against both edges: the CPython emulator and the
# Workers entry point in Pyodide under Node (`eaves edge --runtime pyodide`). Each checks which runtime
# answered (x-edge-runtime, /healthz), so a dispatch bug that served both from one cannot pass.
RUNTIMES = ("cpython", "pyodide")
RUNTIME_HEADER = "x-edge-runtime"


def served_by(response: httpx.Response, runtime: str) -> httpx.Response:
    """``response``, after checking that the edge runtime under test answered it."""
    assert response.headers.get(RUNTIME_HEADER) == runtime, (
        f"the {runtime} edge was under test, but {response.headers.get(RUNTIME_HEADER)!r} answered")
    return response


def edge_runtime(edge_url: str) -> str:
    """The runtime the edge at ``edge_url`` reports in /healthz (and in its header)."""
    health = httpx.get(edge_url + "/healthz", timeout=10)
    assert health.headers.get(RUNTIME_HEADER) == health.json()["runtime"]
    return str(health.json()["runtime"])


def chat_requests_per_worker(data_dir: Path) -> dict[int, int]:
    """Chat requests (not health checks) each edge worker process has counted, by pid: every worker writes its
    own metrics file, ``<data-dir>/metrics/edge/edge-<pid>.json``, about once a second."""
    counts: dict[int, int] = {}
    for path in (data_dir / "metrics" / "edge").glob("edge-*.json"):
        try:
            snapshot: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # being replaced right now; the next poll reads it
        counts[int(snapshot["pid"])] = sum(int(n) for route, _, n in snapshot["requests"] if route != "other")
    return counts


def until_both_workers_served(data_dir: Path, sent: int, send_more: Callable[[], int],
                              max_rounds: int = 20) -> dict[int, int]:
    """The per-worker counts once two worker processes have each served a request. The kernel hands new
    connections to whichever worker accepts first, so a short run may land on one; ``send_more`` sends another
    few requests (returning how many) until both have served, or the rounds run out."""
    for _ in range(max_rounds):
        counts = wait_for_worker_counts(data_dir, sent)
        if len(counts) == 2 and all(counts.values()):
            return counts
        sent += send_more()
    raise AssertionError(f"after {sent} requests one edge worker still served them all: {counts}")


def wait_for_worker_counts(data_dir: Path, total: int, timeout_s: float = 15.0) -> dict[int, int]:
    """The per-worker counts once they add up to ``total`` (workers flush on their own schedule)."""
    deadline = time.monotonic() + timeout_s
    while sum((counts := chat_requests_per_worker(data_dir)).values()) != total and time.monotonic() < deadline:
        time.sleep(0.2)
    assert sum(counts.values()) == total, f"the workers' metrics files count {counts}, not {total} requests"
    return counts


def create_key(data_dir: Path, tenant: str, tier: str = "pro") -> str:
    """`eaves keys create` as a user runs it; the key is the only thing on stdout."""
    result = subprocess.run([sys.executable, "-m", "eaves.cli", "keys", "create", "--tenant", tenant, "--tier", tier,
                             "--data-dir", str(data_dir)], capture_output=True, text=True, check=True)
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("eav_")
    return lines[0]


@pytest.fixture(scope="module", params=RUNTIMES)
def runtime(request: pytest.FixtureRequest) -> str:
    if request.param == "pyodide":
        require(NODE_MODULES / "pyodide", PYODIDE_SITE)
    return str(request.param)


def edge_args(runtime: str) -> list[str]:
    return ["--runtime", runtime]


@pytest.fixture(scope="module")
def stack_dir(tmp_path_factory: pytest.TempPathFactory, runtime: str) -> Path:
    return tmp_path_factory.mktemp(f"stack-{runtime}")


@pytest.fixture(scope="module")
def stack(stack_dir: Path, runtime: str) -> Iterator[Stack]:
    env = {"EAVES_SIM_TTFT_MS": "20", "EAVES_SIM_TOKENS_PER_S": "2000", "EAVES_INTENT": "off"}
    with running_stack(stack_dir, env=env, edge_args=edge_args(runtime)) as running:
        assert running.edge and edge_runtime(running.edge.url) == runtime
        yield running
