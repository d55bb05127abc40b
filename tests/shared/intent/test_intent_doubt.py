"""The [doubt.NAME] tables: a reading the decision head gave a costly decision some probability is kept no longer
than its rule, whatever was decided, and never loosened (also runs inside Pyodide)."""

from __future__ import annotations

import pytest

from shared.intent import PolicyError, load_policy
from shared.intent.policy import TomlPolicy
from shared.intent.routing import DECISIONS, Intent
from tests.shared.intent.backstops import BASE_POLICY

DOUBT = '''
[doubt.time_sensitive]
at_least = 0.01
action = "cache"
ttl_s = 240
stale_s = 60
stale_if_error_s = 0
'''
POLICY = BASE_POLICY + DOUBT


def reading(decision: str = "shared", **probabilities: float) -> Intent:
    """An intent whose decision head gave ``decision`` the rest of the mass and the named ones theirs."""
    rest = 1.0 - sum(probabilities.values())
    spread = tuple((name, probabilities.get(name, rest if name == decision else 0.0)) for name in DECISIONS)
    return Intent("oos", "oos", 0.9, decision, dict(spread)[decision], spread)


class TestDoubtRule:
    def test_an_unsure_shareable_reading_keeps_its_scope_for_at_most_five_minutes(self) -> None:
        route = TomlPolicy(POLICY).route(reading(time_sensitive=0.02), "Can I get a same-day appointment?")
        assert (route.action, route.scope, route.ttl_s, route.stale_s, route.stale_if_error_s) == (
            "cache", "shared", 240, 60, 0)
        assert route.reason == "default; doubt time_sensitive 0.020"

    def test_a_sure_reading_keeps_the_rules_route(self) -> None:
        route = TomlPolicy(POLICY).route(reading(time_sensitive=0.009), "What is the capital of France?")
        assert (route.scope, route.ttl_s, route.stale_s, route.reason) == ("shared", 3600, 600, "default")

    def test_the_threshold_itself_is_unsure(self) -> None:
        assert TomlPolicy(POLICY).route(reading(time_sensitive=0.01)).ttl_s == 240

    def test_it_reads_the_probability_whatever_was_decided(self) -> None:
        """Small talk kept a day is held to the rule as well when its time-sensitive reading is high enough."""
        policy = TomlPolicy(POLICY + '[decisions.small_talk]\naction = "cache"\nttl_s = 86400\nstale_s = 86400\n')
        assert policy.route(reading("small_talk", time_sensitive=0.3)).ttl_s == 240

    def test_each_decision_has_its_own_rule_and_every_one_that_applies_narrows(self) -> None:
        policy = TomlPolicy(POLICY + '[doubt.personal]\nat_least = 0.1\naction = "cache"\nscope = "user"\n'
                            'ttl_s = 3600\n')
        mine = policy.route(reading(personal=0.2))
        assert (mine.scope, mine.ttl_s, mine.reason) == ("user", 3600, "default; doubt personal 0.200")
        both = policy.route(reading(personal=0.2, time_sensitive=0.2))
        assert (both.scope, both.ttl_s, both.stale_s) == ("user", 240, 0)
        assert both.reason == "default; doubt time_sensitive 0.200; doubt personal 0.200"
        assert policy.route(reading(personal=0.05)).ttl_s == 3600

    def test_a_model_without_a_decision_head_is_not_in_doubt(self) -> None:
        assert TomlPolicy(POLICY).route(Intent("oos", "oos", 0.9)).ttl_s == 3600

    def test_origin_and_block_routes_are_left_alone(self) -> None:
        policy = TomlPolicy(POLICY + '[decisions.abuse]\naction = "block"\n')
        assert policy.route(reading("personal", time_sensitive=0.4)).action == "origin"
        assert policy.route(reading("abuse", time_sensitive=0.4)).action == "block"

    def test_a_stricter_route_is_not_loosened(self) -> None:
        """A route kept a minute for its asker stays so; so does one with no stale answer on errors."""
        policy = TomlPolicy(POLICY + '[decisions.time_sensitive]\naction = "cache"\nscope = "user"\nttl_s = 60\n'
                            'stale_if_error_s = 0\n')
        route = policy.route(reading("time_sensitive", time_sensitive=0.9))
        assert (route.scope, route.ttl_s, route.stale_s, route.reason) == ("user", 60, 0, "decision time_sensitive")

    def test_each_setting_is_the_stricter_of_the_two(self) -> None:
        """A route shorter in one way keeps that (30 s stale) and is held to the rule in the others."""
        policy = TomlPolicy(POLICY + '[decisions.shared]\naction = "cache"\nttl_s = 3600\nstale_s = 30\n'
                            'timeout_s = 2\n')
        route = policy.route(reading(time_sensitive=0.05))
        assert (route.ttl_s, route.stale_s, route.stale_if_error_s, route.timeout_s, route.scope) == (
            240, 30, 0, 2.0, "shared")

    def test_after_a_freshness_cue_the_narrower_route_stands(self) -> None:
        policy = TomlPolicy(POLICY + '[freshness]\ncues = ["now"]\naction = "cache"\nscope = "user"\nttl_s = 60\n'
                            'stale_if_error_s = 0\n')
        route = policy.route(reading(time_sensitive=0.5), "open now?")
        assert (route.scope, route.ttl_s, route.reason) == ("user", 60, "default; freshness cue 'now'")

    def test_an_origin_doubt_rule_sends_the_unsure_reading_to_the_origin(self) -> None:
        policy = TomlPolicy(BASE_POLICY + '[doubt.personal]\nat_least = 0.3\naction = "origin"\n')
        assert policy.route(reading(personal=0.3)).action == "origin"
        assert policy.route(reading(personal=0.29)).action == "cache"

    def test_the_shipped_policy_keeps_no_unsure_answer_past_300_s(self) -> None:
        from shared.intent.evaluate import FRESH_LIMIT_S, oldest_served_s

        policy = load_policy()
        for decision in DECISIONS:
            route = policy.route(reading(decision, time_sensitive=0.5 if decision != "time_sensitive" else 0.9))
            assert oldest_served_s(route) <= FRESH_LIMIT_S, (decision, route)


@pytest.mark.parametrize(("table", "message"), [
    ('at_least = 0.1\naction = "cache"\nttl_s = 60\n', r"\[doubt\]: at_least is not a table"),
    ('[doubt.sharde]\nat_least = 0.1\naction = "cache"\nttl_s = 60\n', r"\[doubt.sharde\]: unknown decision 'sharde'"),
    ('[doubt.shared]\naction = "cache"\nttl_s = 60\n', r"\[doubt.shared\]: expected a table with at_least"),
    ('shared = 0.1\n', r"\[doubt\]: shared is not a table"),
    ('[doubt.shared.deeper]\nat_least = 0.1\n', r"\[doubt.shared\]: expected a table with at_least"),
    ('[doubt.shared]\nat_least = 0\naction = "cache"\nttl_s = 60\n', "above 0 and at most 1, not 0"),
    ('[doubt.shared]\nat_least = 2\naction = "cache"\nttl_s = 60\n', "not 2"),
    ('[doubt.shared]\nat_least = true\naction = "cache"\nttl_s = 60\n', "not True"),
    ('[doubt.shared]\nat_least = { shared = 0.1 }\naction = "cache"\nttl_s = 60\n', "at_least must be a probability"),
    ('[doubt.shared]\nat_least = 0.1\naction = "block"\n', "only makes a route stricter"),
    ('[doubt.shared]\nat_least = 0.1\naction = "cache"\n', r"needs ttl_s > 0"),
    ('[doubt.shared]\nat_least = 0.1\naction = "cache"\nttl_s = 60\nmin_confidence = 0.5\n', "min_confidence has no"),
    ('[doubt.shared]\nat_least = 0.1\naction = "cache"\nttl_s = 60\ncues = ["now"]\n', r"unknown key\(s\) \['cues'\]"),
])
def test_a_bad_doubt_table_names_the_problem(table: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message) as info:
        TomlPolicy("[default]\naction = \"cache\"\nttl_s = 60\n" + ("" if table.startswith("[") else "[doubt]\n")
                   + table, "p.toml")
    assert "p.toml [doubt" in str(info.value)
