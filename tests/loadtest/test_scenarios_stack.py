"""`eaves scenarios` against a real local stack, on a small sample of the banks (the figures are not asserted:
they are the product's, measured by the full run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.banks import LABELS
from loadtest.scenarios import ScenarioConfig, render, run_scenarios

pytestmark = pytest.mark.integration


def test_sample_runs_through_both_callers(tmp_path: Path) -> None:
    """Every label is asked by API-key and JWT callers; every request is answered; the report is complete."""
    report = run_scenarios(ScenarioConfig(sample=3, data_dir=tmp_path))
    assert report["run"]["questions"] == 3 * len(LABELS)
    # A, B and A again for each question and caller; fresh questions once.
    assert report["run"]["requests"] == 2 * (3 * 3 * (len(LABELS) - 1) + 3)
    assert set(report["labels"]) == set(LABELS) and set(report["by_caller"]) == {"api_key", "jwt"}
    for label, figures in report["labels"].items():
        assert figures["errors"] == 0, (label, figures)
        assert figures["observations"] == 6
    assert set(report["targets"]) == {"shareable_b_from_edge", "personal_b_served_a", "time_sensitive_max_age_s"}
    assert "targets:" in render(report)


def test_a_stack_that_shares_everything_is_caught(tmp_path: Path) -> None:
    """With the model off every answer is cached tenant-wide for an hour: the evaluation must see B served A's
    personal answers and time-sensitive entries kept too long, on real HTTP."""
    report = run_scenarios(ScenarioConfig(sample=3, data_dir=tmp_path, callers=("api_key",),
                                          extra_env={"EAVES_INTENT": "off"}))
    assert report["labels"]["personal"]["b_served_a"] == 1.0
    assert report["labels"]["shareable"]["b_from_edge"] == 1.0
    assert not report["targets"]["personal_b_served_a"]["met"]
    assert not report["targets"]["time_sensitive_max_age_s"]["met"]
