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


class _Decides:
    """Decides from the text itself: "p:..." personal, "t:..." time-sensitive, anything else shared."""

    version = "decides"

    def classify(self, text: str) -> Intent:
        decision = {"p": "personal", "t": "time_sensitive"}.get(text[0], "shared")
        return Intent("oos", "oos", 0.5, decision, 0.9)


class TestRouteReport:
    POLICY = ('[default]\naction = "cache"\nttl_s = 3600\n'
              '[decisions.personal]\naction = "cache"\nscope = "user"\nttl_s = 60\n'
              '[decisions.time_sensitive]\naction = "cache"\nttl_s = 60\nstale_if_error_s = 0\n')

    def test_shares_per_label(self) -> None:
        """Each label's routes, decisions and second-user shares, counted by hand from the rows."""
        from shared.intent.evaluate import route_report
        from shared.intent.policy import TomlPolicy

        rows = [Example("a", "", None, "shared"), Example("p:b", "", None, "shared"),
                Example("p:c", "", None, "personal"), Example("d", "", None, "personal"),
                Example("t:e", "", None, "time_sensitive"), Example("no decision", "x")]
        report = route_report(_Decides(), TomlPolicy(self.POLICY), rows)
        assert report["examples"] == 5
        shared = report["labels"]["shared"]
        assert shared["routes"] == {"cache/shared": 0.5, "cache/user": 0.5}
        assert shared["second_user_from_edge"] == 0.5 and shared["crosses_users"] is None
        # One personal row decided personal (user scope), one decided shared: half crosses users.
        assert report["personal_crosses_users"] == 0.5
        # ttl 60 + stale 0 + stale-if-error 0 = 60 s <= 300 s: never too old.
        assert report["time_sensitive_over_300s"] == 0.0
        assert report["shareable_second_user_from_edge"] == 0.5
        assert report["decisions"]["confusion"] == {"personal": {"personal": 1, "shared": 1},
                                                    "shared": {"personal": 1, "shared": 1},
                                                    "time_sensitive": {"time_sensitive": 1}}

    def test_stale_if_error_counts_towards_age(self) -> None:
        """A time-sensitive cache rule without stale_if_error_s inherits the edge's day: too old."""
        from shared.intent.evaluate import crosses_users, oldest_served_s
        from shared.intent.routing import Route

        assert oldest_served_s(Route("cache", ttl_s=60)) == 60 + 86400
        assert crosses_users("time_sensitive", Route("cache", ttl_s=60))
        assert not crosses_users("time_sensitive", Route("cache", ttl_s=200, stale_s=100, stale_if_error_s=0))
        assert crosses_users("time_sensitive", Route("cache", ttl_s=200, stale_s=101, stale_if_error_s=0))
        assert not crosses_users("personal", Route("cache", ttl_s=60, scope="user"))
        assert not crosses_users("personal", Route("origin", scope="none"))
