"""Real servers on 127.0.0.1: the stack started exactly as `eaves up` starts it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from eaves.stack import Stack, running_stack
from tests.node_tools import NODE_MODULES, PYODIDE_SITE, require

# The HTTP tests that take the `runtime` fixture run against both edges: the CPython emulator and the
# Workers entry point in Pyodide under Node (`eaves edge --runtime pyodide`).
RUNTIMES = ("cpython", "pyodide")


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
        yield running
