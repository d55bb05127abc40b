"""`eaves loadtest` end to end: a short run against a fresh local stack has no unexpected failures."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.questions import POPULAR, Zipf
from loadtest.run import LoadTestConfig, run


def test_zipf_favours_the_first_questions() -> None:
    """The most popular question is drawn far more often than the hundredth."""
    import random

    zipf = Zipf(POPULAR, rng=random.Random(7))
    draws = [zipf.draw() for _ in range(5000)]
    assert draws.count(POPULAR[0]) > 10 * max(1, draws.count(POPULAR[99]))


@pytest.mark.integration
def test_short_loadtest_has_no_unexpected_failures(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Every scenario runs; hits, misses, 401s and 429s appear; only intended refusals are non-2xx."""
    slow = bool(request.config.getoption("--slow"))
    config = LoadTestConfig(users=20 if slow else 8, spawn_rate=10, run_time_s=120 if slow else 20,
                            out_dir=tmp_path / "report")
    result = run(config)
    assert result.unexpected_failures == 0, result.failures
    routes = result.by_route
    for route in ("hit", "miss", "unauthorized", "rate_limited"):
        assert routes.get(route, 0) > 0, routes
    assert (tmp_path / "report" / "report.html").exists() and (tmp_path / "report" / "locust_stats.csv").exists()
    assert result.origin_calls_saved > 0


@pytest.mark.integration
def test_short_loadtest_against_the_pyodide_edge(tmp_path: Path) -> None:
    """The deployed code path (the Workers entry point in Pyodide) under the same scenarios, shorter."""
    from tests.node_tools import NODE_MODULES, PYODIDE_SITE, require

    require(NODE_MODULES / "pyodide", PYODIDE_SITE)
    result = run(LoadTestConfig(users=6, spawn_rate=10, run_time_s=10, out_dir=tmp_path / "report", runtime="pyodide"))
    assert result.unexpected_failures == 0, result.failures
    for route in ("hit", "miss", "unauthorized", "rate_limited"):
        assert result.by_route.get(route, 0) > 0, result.by_route
