"""The Pyodide tier. ``inside/`` holds tests that only run inside Pyodide (they import ``js`` and
``workers``); CPython collects only the tests that drive the harness."""

from __future__ import annotations

import sys

import pytest

collect_ignore_glob = [] if sys.platform == "emscripten" else ["inside/*"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "pyodide: runs tests inside real Pyodide under Node (a few seconds)")
