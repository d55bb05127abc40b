"""The fault run, short form: the origin dies under load and nothing is answered wrongly."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.fault_run import check, fault_run, outcome_of

pytestmark = pytest.mark.integration


def test_checker_catches_crossed_answers() -> None:
    """An answer for another tenant or another question is reported as wrong."""
    body = {"choices": [{"message": {"content": "[t1] Simulated answer to: hello. more"}}]}
    assert check(body, "t1", "hello") is None
    assert check(body, "t2", "hello") is not None
    assert check(body, "t1", "goodbye") is not None


def test_outcomes() -> None:
    """Routes map onto the four outcomes; any non-200 is a failure."""
    assert [outcome_of(200, "hit"), outcome_of(200, "stale"), outcome_of(200, "fallback"),
            outcome_of(503, "fallback")] == ["fresh", "stale", "fallback", "failed"]


def test_short_fault_run(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Under load with the origin killed for a third of the run: stale answers cover it, none is wrong."""
    duration = 30.0 if request.config.getoption("--slow") else 8.0
    report = fault_run(duration, 4, tmp_path)
    assert report["wrong_answers"] == 0, report["wrong_examples"]
    assert report["phases"]["outage"]["stale"] > 0
    assert report["phases"]["after"]["fresh"] > 0
