"""eaves/pyodide/startup.mjs, the measurement of a Worker isolate's start inside Pyodide: it runs and reports
every figure (the import's CPU and the first requests'; printed, never asserted)."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.node_tools import NODE_MODULES, PYODIDE_SITE, REPO, node, require

pytestmark = pytest.mark.pyodide


def test_startup_measure_reports_import_and_first_request_cpu(capsys: pytest.CaptureFixture[str]) -> None:
    """The import (with entropy refused, as workerd refuses it in top-level code) and three chat requests run
    through the Workers entry point; each figure is reported."""
    require(NODE_MODULES / "pyodide", PYODIDE_SITE)
    result = subprocess.run([node(), str(REPO / "eaves" / "pyodide" / "startup.mjs"), "--intent-share"], cwd=REPO,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["pyodide"] == "0.28.2"
    assert figures["import_cpu_ms"] > 0 and figures["intent_load_cpu_ms"] > 0
    for name in ("first_request", "second_request", "third_request"):
        # CPU is printed to 0.1 ms: a warm request may round to 0, the first (cold) one never does.
        assert figures[name]["outcome"] == "200 edge" and figures[name]["cpu_ms"] >= 0
    assert figures["first_request"]["cpu_ms"] > 0
    with capsys.disabled():
        print(f"\nstartup ({figures['clock']} CPU, Node {figures['node']}): import {figures['import_cpu_ms']} ms "
              f"(model and policy {figures['intent_load_cpu_ms']} ms of it), "
              f"requests {[figures[n]['cpu_ms'] for n in ('first_request', 'second_request', 'third_request')]} ms")
