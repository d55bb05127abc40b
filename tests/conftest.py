"""Suite-wide fixtures. Coroutine tests run on a fresh event loop each, without a plugin
(the same suite runs inside Pyodide, where pytest-asyncio is not available)."""

from __future__ import annotations

import asyncio
import inspect
import sys
from collections.abc import Iterator
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--slow", action="store_true", help="run the slow tiers in full (load tests, benchmarks)")


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    kwargs: dict[str, Any] = {name: pyfuncitem.funcargs[name] for name in names}
    asyncio.run(pyfuncitem.obj(**kwargs))
    return True


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """On CPython a test that skips because a module "could not import" fails instead: every such module
    (lmdb, numpy, onnxruntime, onnx) is in requirements/lock.txt, so the skip means a broken install, not a
    tier to leave out. Inside Pyodide, where they do not exist, the skip stands (the Pyodide tier checks
    that nothing else skips there)."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if sys.platform != "emscripten" and report.skipped and "could not import" in str(report.longrepr):
        report.outcome = "failed"
        report.longrepr = (f"{report.longrepr}\n{item.nodeid}: a locked dependency is missing on CPython: "
                           "run scripts/setup")
