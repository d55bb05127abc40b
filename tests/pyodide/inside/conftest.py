"""Fixtures for the tests that run inside Pyodide."""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def server() -> str:
    """The 127.0.0.1 server that tests/pyodide/test_pyodide_tier.py starts for the harness run."""
    url = os.environ.get("EAVES_TEST_SERVER")
    if not url:
        pytest.skip("EAVES_TEST_SERVER is not set (tests/pyodide/test_pyodide_tier.py starts the server)")
    return url
