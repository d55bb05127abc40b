"""`eaves loadtest` end to end: a short run against a fresh local stack has no unexpected failures and serves
no answer across users; the report's per-label figures add up."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.answers import Served
from loadtest.checks import Checks
from loadtest.questions import SHAREABLE, Zipf
from loadtest.run import LoadTestConfig, LoadTestResult, RouteRow, format_table, run


def test_zipf_favours_the_first_questions() -> None:
    """The most popular question is drawn far more often than the hundredth."""
    import random

    zipf = Zipf(SHAREABLE, rng=random.Random(7))
    draws = [zipf.draw() for _ in range(5000)]
    assert draws.count(SHAREABLE[0]) > 10 * max(1, draws.count(SHAREABLE[99]))


def _row(name: str, requests: int) -> RouteRow:
    return RouteRow(name, requests, 0, 1.0, 1.0, 1.0, 1.0)


def test_rows_add_up_per_label_and_per_route(tmp_path: Path) -> None:
    """``<label>: <route>[ (stream)]`` rows give the hit ratio per label and the counts per route."""
    rows = [_row("shareable: hit", 6), _row("shareable: miss (stream)", 2), _row("personal: miss", 4),
            _row("personal: hit", 1), _row("small_talk: edge", 3), _row("bad_token: unauthorized", 5)]
    result = LoadTestResult(rows, None, tmp_path)
    assert result.by_route == {"hit": 7, "miss": 6, "edge": 3, "unauthorized": 5}
    assert (result.label_hit_ratio("shareable"), result.label_hit_ratio("personal")) == (0.75, 0.2)
    assert result.label_hit_ratio("small_talk") is None and result.hit_ratio == 7 / 13
    assert set(result.labels_report()) == {"shareable", "personal", "small_talk"}


def test_an_answer_for_another_user_is_counted_and_shown(tmp_path: Path) -> None:
    """The checks count an answer naming someone else as served across users; the table says so."""
    checks = Checks()
    checks.record("personal", Served(200, "hit", user="visitor-a", age_s=3), "visitor-b", "Where is my package?")
    checks.record("personal", Served(200, "miss", user="visitor-b"), "visitor-b", "Where is my package?")
    checks.record("personal", Served(429, "rate_limited"), "visitor-b", "Where is my package?")
    checks.write(tmp_path / "checks.json")
    result = LoadTestResult([_row("personal: hit", 1), _row("personal: miss", 1)], None, tmp_path,
                            checks=Checks.read(tmp_path / "checks.json"))
    assert result.served_across_users == 1
    personal = result.as_dict()["labels"]["personal"]
    assert (personal["answered"], personal["named"], personal["crossed"], personal["kv_without_lifetime"]) == (
        2, 2, 1, 1)
    assert "answers served across users: 1" in format_table(result)
    assert "asked by visitor-b, answer for visitor-a" in format_table(result)


def test_time_sensitive_lifetimes_over_300_s_are_counted(tmp_path: Path) -> None:
    """A kept answer declaring more than 300 s of life is counted; no-store keeps nothing."""
    checks = Checks()
    checks.record("time_sensitive", Served(200, "miss", cache_control="max-age=3600"), "u", "q")
    checks.record("time_sensitive", Served(200, "hit", age_s=10, cache_control="max-age=50"), "u", "q")
    checks.record("time_sensitive", Served(200, "miss", cache_control="no-store"), "u", "q")
    figures = checks.labels["time_sensitive"]
    assert (figures.kept_over_target, figures.max_lifetime_s, figures.max_age_s) == (1, 3600, 10)


def test_missing_checks_file_reads_as_empty(tmp_path: Path) -> None:
    """A locust run that wrote no checks (an old locustfile, a crash) reports no crossings, not an error."""
    assert Checks.read(tmp_path / "absent.json").served_across_users == 0


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
    assert result.edge_metrics.get("hit", 0) > 0, result.edge_metrics  # the edge's /metrics opened with the token
    # The short form has one visitor per scenario, so only the --slow form (20 visitors, several of them
    # asking personal questions) can see an answer cross users; test_scenarios_stack shows the check bites.
    assert result.served_across_users == 0, result.checks.as_dict()
    labels = result.labels_report()
    for label in ("shareable", "personal", "time_sensitive", "fresh", "small_talk"):
        assert labels[label]["requests"] > 0 and labels[label]["answered"] > 0, label


@pytest.mark.integration
def test_short_loadtest_against_the_pyodide_edge(tmp_path: Path) -> None:
    """The deployed code path (the Workers entry point in Pyodide) under the same scenarios, shorter."""
    from tests.node_tools import NODE_MODULES, PYODIDE_SITE, require

    require(NODE_MODULES / "pyodide", PYODIDE_SITE)
    # 8 users: locust gives every one of the 8 scenarios a user only when there are at least as many users.
    result = run(LoadTestConfig(users=8, spawn_rate=10, run_time_s=10, out_dir=tmp_path / "report", runtime="pyodide"))
    assert result.unexpected_failures == 0, result.failures
    for route in ("hit", "miss", "unauthorized", "rate_limited"):
        assert result.by_route.get(route, 0) > 0, result.by_route


def test_a_shared_entry_for_a_personal_question_the_visitor_never_asked_is_crossed() -> None:
    """The edge tells the origin no end user for answers it shares, so such an answer names nobody; served
    from the KV to a visitor who never asked, it was made for someone else. Shareable hits are the point."""
    checks = Checks()
    checks.record("personal", Served(200, "hit"), "visitor-b", "Where is my package?", first_ask=True)
    checks.record("personal", Served(200, "hit"), "visitor-b", "Where is my package?", first_ask=False)
    checks.record("personal", Served(200, "hit", user="visitor-b"), "visitor-b", "What's my balance?",
                  first_ask=True)
    checks.record("shareable", Served(200, "hit"), "visitor-b", "What is your return policy?", first_ask=True)
    assert (checks.labels["personal"].crossed, checks.labels["shareable"].crossed) == (1, 0)
    assert "another visitor (shared entry)" in checks.labels["personal"].crossed_examples[0]
