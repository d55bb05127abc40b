"""Evaluation figures: accuracy over in-scope rows, recall over out-of-scope rows, macro F1, percentiles."""

from __future__ import annotations

from shared.intent.dataset import Example
from shared.intent.evaluate import evaluate, percentile, scores
from shared.intent.routing import Intent


def test_scores_split_in_scope_and_oos() -> None:
    """In-scope accuracy ignores oos rows; oos recall counts only them."""
    result = scores(["a", "a", "b", "oos", "oos"], ["a", "b", "b", "oos", "a"])
    assert result["in_scope_accuracy"] == 2 / 3
    assert result["oos_recall"] == 0.5
    assert 0 < result["macro_f1"] < 1


def test_recall_is_none_without_oos_rows() -> None:
    """Without out-of-scope rows there is no recall to report."""
    assert scores(["a"], ["a"])["oos_recall"] is None


def test_percentile_nearest_rank() -> None:
    """Nearest-rank percentiles of 1..100."""
    values = [float(v) for v in range(100, 0, -1)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([], 99) == 0.0


class _Echo:
    version = "echo"

    def classify(self, text: str) -> Intent:
        return Intent(text, text, 1.0)


def test_evaluate_times_each_query() -> None:
    """evaluate classifies one query at a time and reports latency percentiles."""
    result = evaluate(_Echo(), [Example("a", "a"), Example("b", "oos")])
    assert result["in_scope_accuracy"] == 1.0 and result["oos_recall"] == 0.0
    assert result["p99_us"] >= result["p50_us"] >= 0
