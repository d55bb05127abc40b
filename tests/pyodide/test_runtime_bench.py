"""`python -m eaves.bench.runtimes` in a short form: both runtimes report every figure (timings are printed
by the benchmark, never asserted)."""

from __future__ import annotations

import asyncio

import pytest

from eaves.bench.runtimes import measure, measure_in_pyodide, render
from tests.node_tools import NODE_MODULES, PYODIDE_SITE, require

pytestmark = pytest.mark.pyodide


def test_cpython_and_pyodide_report_the_same_figures() -> None:
    require(NODE_MODULES / "pyodide", PYODIDE_SITE)
    cpython = asyncio.run(measure(300))
    pyodide = measure_in_pyodide(300)
    assert cpython["interpreter"] == "cpython" and pyodide["interpreter"] == "pyodide"
    for result in (cpython, pyodide):
        assert result["hit_path"]["n"] >= 300 and result["hit_path"]["p50_us"] > 0
        assert result["classify_pure"]["p50_us"] > 0
    assert pyodide["classify_numpy"] is None and pyodide["classify_onnxruntime"] is None
    table = render(cpython, pyodide)
    assert "hit path" in table and "pure-Python ONNX" in table
