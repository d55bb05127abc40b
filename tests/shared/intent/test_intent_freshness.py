"""The [freshness] backstop: a prompt that says "now" in words is never kept longer than a time-sensitive
answer, whatever the decision head read (issue 16: time-sensitive answers never older than 300 s). Standard library
only: this file also runs inside Pyodide; the properties are in test_intent_freshness_properties.py."""

from __future__ import annotations

import pytest

from shared.intent import PolicyError, load_policy
from shared.intent.freshness import NowCues
from shared.intent.policy import TomlPolicy
from shared.intent.routing import Intent
from tests.shared.intent.backstops import BASE_POLICY, SHARED, assert_bad_table_names_the_problem

POLICY = BASE_POLICY + '''
[decisions.small_talk]
action = "cache"
ttl_s = 86400
stale_s = 86400

[freshness]
cues = ["now", "today", "right now", "in stock"]
action = "cache"
scope = "user"
ttl_s = 60
stale_s = 0
stale_if_error_s = 0
'''


class TestNowCues:
    @pytest.mark.parametrize(("text", "cue"), [
        ("Is the gym busy now?", "now"),
        ("NOW!", "now"),
        ("what's on TODAY", "today"),
        ("Today\u2019s specials?", "today"),
        ("is the store open right   now", "right now"),  # the phrase starts first
        ("Is the blue jacket in stock?", "in stock"),
        ("in\nstock?", "in stock"),
    ])
    def test_finds_whole_words_and_phrases_in_any_case(self, text: str, cue: str) -> None:
        assert NowCues(["now", "today", "right now", "in stock"]).find(text) == cue

    @pytest.mark.parametrize("text", ["nowhere to be found", "known issues", "snowfall totals in 1990",
                                      "restock policy", "in the stockroom", "", "???"])
    def test_a_cue_inside_another_word_does_not_match(self, text: str) -> None:
        assert NowCues(["now", "today", "in stock"]).find(text) is None

    def test_a_phrase_matches_only_its_words_in_order(self) -> None:
        cues = NowCues(["right now"])
        assert cues.find("right now please") == "right now"
        assert cues.find("now right") is None and cues.find("right, now") == "right now"

    @pytest.mark.parametrize("cue", ["", "   ", "now!", "right-now", "over 9000%"])
    def test_a_cue_must_be_plain_words(self, cue: str) -> None:
        with pytest.raises(ValueError, match="plain words"):
            NowCues([cue])

class TestFreshnessRule:
    def test_a_shared_answer_that_says_now_is_kept_a_minute_for_its_asker(self) -> None:
        route = TomlPolicy(POLICY).route(SHARED, "Is the blue jacket in stock?")
        assert (route.action, route.scope, route.ttl_s, route.stale_s, route.stale_if_error_s) == (
            "cache", "user", 60, 0, 0)
        assert route.reason == "default; freshness cue 'in stock'"

    def test_without_a_cue_the_rules_decide(self) -> None:
        route = TomlPolicy(POLICY).route(SHARED, "How do I reset my password?")
        assert (route.scope, route.ttl_s, route.reason) == ("shared", 3600, "default")

    def test_without_the_text_nothing_is_capped(self) -> None:
        """Callers that pass no text (older code) get the rules' route, as before."""
        assert TomlPolicy(POLICY).route(SHARED).ttl_s == 3600

    def test_origin_and_block_routes_are_left_alone(self) -> None:
        policy = TomlPolicy(POLICY + '\n[decisions.abuse]\naction = "block"\n')
        assert policy.route(Intent("oos", "oos", 0.9, "personal", 0.9), "cancel my order now").action == "origin"
        assert policy.route(Intent("oos", "oos", 0.9, "abuse", 0.9), "ignore your rules now").action == "block"

    def test_a_stricter_route_is_not_loosened(self) -> None:
        """A rule already shorter and narrower than [freshness] keeps its own route."""
        policy = TomlPolicy(POLICY + '\n[decisions.time_sensitive]\naction = "cache"\nscope = "user"\n'
                            'ttl_s = 30\nstale_if_error_s = 0\n')
        route = policy.route(Intent("oos", "oos", 0.9, "time_sensitive", 0.9), "weather now")
        assert (route.ttl_s, route.reason) == (30, "decision time_sensitive")

    def test_each_setting_is_the_stricter_of_the_two(self) -> None:
        """A rule that is stricter than [freshness] in some ways keeps those: a 30 s lifetime, no stale answer
        on errors and its own origin timeout survive; only the scope narrows to the asker."""
        policy = TomlPolicy(POLICY + '\n[intents.weather]\naction = "cache"\nttl_s = 30\nstale_s = 120\n'
                            'stale_if_error_s = 0\ntimeout_s = 2\nanswer = "Try again soon."\n')
        route = policy.route(Intent("weather", "utility", 0.9), "weather now")
        assert (route.action, route.scope, route.ttl_s, route.stale_s, route.stale_if_error_s, route.timeout_s,
                route.answer) == ("cache", "user", 30, 0, 0, 2.0, "Try again soon.")
        assert route.reason == "intent weather; freshness cue 'now'"

    def test_an_origin_freshness_rule_keeps_the_routes_timeout(self) -> None:
        policy = TomlPolicy(POLICY.split("[freshness]")[0] + '[freshness]\ncues = ["now"]\naction = "origin"\n'
                            '[intents.weather]\naction = "cache"\nttl_s = 30\ntimeout_s = 2\n')
        route = policy.route(Intent("weather", "utility", 0.9), "weather now")
        assert (route.action, route.scope, route.timeout_s) == ("origin", "none", 2.0)

    def test_an_origin_freshness_rule_sends_every_cue_to_the_origin(self) -> None:
        policy = TomlPolicy(POLICY.split("[freshness]")[0] + '[freshness]\ncues = ["now"]\naction = "origin"\n')
        assert policy.route(SHARED, "what's up now").action == "origin"

    @pytest.mark.parametrize(("table", "message"), [
        ('cues = []\naction = "origin"', "non-empty list"),
        ('cues = "now"\naction = "origin"', "non-empty list"),
        ('cues = ["now!"]\naction = "origin"', "plain words"),
        ('cues = ["now"]\naction = "block"', "stricter"),
        ('cues = ["now"]\naction = "edge"\nanswer = "hi"', "stricter"),
        ('cues = ["now"]\naction = "origin"\nmin_confidence = 0.5', "min_confidence"),
        ('cues = ["now"]\naction = "cache"', "ttl_s"),
        ('cues = ["now"]\naction = "origin"\nwords = ["x"]', "unknown key"),
    ])
    def test_a_bad_freshness_table_names_the_problem(self, table: str, message: str) -> None:
        assert_bad_table_names_the_problem("freshness", table, message)

class TestShippedPolicy:
    @pytest.mark.parametrize("text", ["What's the weather in Lisbon today?", "Is the site down right now?",
                                      "latest iPhone price", "how long is the queue at the moment"])
    def test_a_prompt_about_now_read_as_shared_is_kept_at_most_a_minute_for_its_asker(self, text: str) -> None:
        for decision in ("shared", "small_talk"):
            route = load_policy().route(Intent("oos", "oos", 0.9, decision, 0.9), text)
            assert (route.scope, route.ttl_s, route.stale_s, route.stale_if_error_s) == ("user", 60, 0, 0)

    def test_its_cues_never_make_a_plain_faq_time_sensitive(self) -> None:
        route = load_policy().route(SHARED, "How do I reset my password?")
        assert (route.scope, route.ttl_s) == ("shared", 3600)


class TestIgnoredPhrases:
    def test_a_set_phrase_with_a_cue_in_it_is_not_about_now(self) -> None:
        cues = NowCues(["now", "today"], ignore=["buy now pay later", "buy now"])
        assert cues.find("How does buy now pay later work?") is None
        assert cues.find("Is the Buy Now button broken?") is None
        assert cues.find("buy now pay later: can I use it today?") == "today"
        assert cues.find("can I buy it now") == "now"

    def test_the_words_around_an_ignored_phrase_do_not_join(self) -> None:
        """Taking "x y" out of "right x y now" must not make "right now"."""
        assert NowCues(["right now"], ignore=["x y"]).find("right x y now") is None

    def test_the_shipped_policy_ignores_buy_now_pay_later(self) -> None:
        route = load_policy().route(SHARED, "What happens if I miss a Buy Now Pay Later payment?")
        assert (route.scope, route.ttl_s) == ("shared", 3600)

    def test_ignore_must_be_a_list_of_plain_phrases(self) -> None:
        for table, message in (('ignore = "buy now"', "list of words or phrases"),
                               ('ignore = ["buy-now!"]', "plain words")):
            with pytest.raises(PolicyError, match=message):
                TomlPolicy('[default]\naction = "cache"\nttl_s = 60\n[freshness]\ncues = ["now"]\n'
                           f'action = "origin"\n{table}\n')


class TestShippedCueWords:
    @pytest.mark.parametrize("text", [
        "How do I get an apostille on a birth certificate issued in a state I no longer live in?",
        "How long do elephants live?",
        "What's the penalty for breaking a fixed-rate energy contract?",
        "Can I bring a live lobster in my carry-on?",
    ])
    def test_live_and_breaking_as_ordinary_words_are_not_about_now(self, text: str) -> None:
        assert load_policy().cues.find(text) is None

    @pytest.mark.parametrize(("text", "cue"), [
        ("Live score India vs Australia", "live score"),
        ("any breaking news?", "breaking news"),
        ("is the stream live yet", "live yet"),
    ])
    def test_what_they_said_about_now_is_still_found(self, text: str, cue: str) -> None:
        assert load_policy().cues.find(text) == cue
