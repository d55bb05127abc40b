"""The [records] backstop: a prompt that names one of the asker's records ("my booking ABX12", "order #4471",
an email address) is never stored for the tenant, whatever the decision head read (issue 16: personal
answers served across users). Standard library only: this file also runs inside Pyodide; the properties are
in test_intent_records_properties.py."""

from __future__ import annotations

import pytest

from shared.intent import load_policy
from shared.intent.policy import TomlPolicy
from shared.intent.records import RecordCues
from shared.intent.routing import Intent
from tests.shared.intent.backstops import BASE_POLICY, SHARED, assert_bad_table_names_the_problem

NOUNS = ["order", "booking", "ticket", "claim", "card", "gift card", "account", "policy", "ref"]
POLICY = BASE_POLICY + '''
[decisions.time_sensitive]
action = "cache"
scope = "user"
ttl_s = 60

[records]
nouns = ["order", "booking", "ticket", "claim"]
action = "origin"

[freshness]
cues = ["now", "today"]
action = "cache"
scope = "user"
ttl_s = 60
'''


class TestRecordCues:
    @pytest.mark.parametrize(("text", "found"), [
        ("Can I upgrade my booking ABX12 to business class?", "my booking ABX12"),
        ("I need to change the name on my ticket order 77812", "my ticket order 77812"),
        ("Where is my order 4471?", "my order 4471"),
        ("order #4471 status", "order #4471"),
        ("ORDER NUMBER 4471 hasn't shipped", "ORDER NUMBER 4471"),
        ("my order #: 4471", "my order #: 4471"),
        ("order \u2116 55120", "order \u2116 55120"),
        ("claim CLM-2291 update", "claim CLM-2291"),
        ("Booking ref: KD93L", "Booking ref: KD93L"),
        ("my booking is QX7P2", "my booking is QX7P2"),
        ("card ending in 4421 was declined", "card ending in 4421"),
        ("what about order 5512034", "order 5512034"),
        ("Account number: 12-345-678", "Account number: 12-345-678"),
        ("please send the receipt to jo.b+shop@example.co.uk", "jo.b+shop@example.co.uk"),
        ("booking\nABX12", "booking ABX12"),
    ])
    def test_finds_a_named_record_or_an_email_address(self, text: str, found: str) -> None:
        assert RecordCues(NOUNS).find(text) == found

    @pytest.mark.parametrize("text", [
        "How do I reset my password?",
        "Can I order 500 flyers?",              # a quantity, not a reference
        "order 4471",                           # four bare digits: a quantity as often as an order
        "What changed in the 2024 policy?",
        "policy 2024",                          # a year
        "order 100ml bottles", "can I order 128GB", "ticket for the 14th", "booking at 10am",  # units
        "Is flight BA117 on time?",             # a flight is the same for everyone
        "order no 44",
        "What is booking.com?", "email us at support",  # no address
        "ticket -12345",
        "gift card 4421 9981 balance",          # four digits, unmarked
        "", "@", "a@b", "order", "my order #",
    ])
    def test_leaves_other_prompts_alone(self, text: str) -> None:
        assert RecordCues(NOUNS).find(text) is None

    def test_a_noun_inside_another_word_does_not_count(self) -> None:
        assert RecordCues(["order"]).find("reorder 55120") is None
        assert RecordCues(["order"]).find("border 55120") is None

    def test_without_nouns_only_email_addresses_count(self) -> None:
        assert RecordCues([]).find("my order 55120") is None
        assert RecordCues([]).find("write to a@b.io") == "a@b.io"

    @pytest.mark.parametrize("noun", ["", "  ", "order!", "e-mail", "#"])
    def test_a_noun_must_be_plain_words(self, noun: str) -> None:
        with pytest.raises(ValueError, match="plain words"):
            RecordCues([noun])

    @pytest.mark.parametrize("text", ["a" * 16_000, "order " * 2_700, "@" + "a" * 16_000, "1 " * 8_000,
                                      "my order " * 1_800, "a@" * 8_000, "order #" * 2_200])
    def test_a_long_hostile_prompt_is_answered(self, text: str) -> None:
        """Bounded work: these finish (the scan looks only around digits and "@", a bounded number of each)."""
        assert RecordCues(NOUNS).find(text) is None


class TestRecordsRule:
    def test_a_shared_reading_of_a_named_record_goes_to_the_origin(self) -> None:
        route = TomlPolicy(POLICY).route(SHARED, "Can I upgrade my booking ABX12 to business class?")
        assert (route.action, route.scope) == ("origin", "none")
        assert route.reason == "default; record 'my booking ABX12'"

    def test_a_per_user_route_is_narrowed_too(self) -> None:
        route = TomlPolicy(POLICY).route(Intent("oos", "oos", 0.9, "time_sensitive", 0.9), "is order 77812 late?")
        assert route.action == "origin"

    def test_without_a_record_the_rules_decide(self) -> None:
        route = TomlPolicy(POLICY).route(SHARED, "How do I track an order?")
        assert (route.action, route.scope, route.reason) == ("cache", "shared", "default")

    def test_both_backstops_name_what_they_found(self) -> None:
        """A record sends the prompt to the origin; [freshness] then has nothing to narrow."""
        route = TomlPolicy(POLICY).route(SHARED, "where is order 77812 now")
        assert (route.action, route.reason) == ("origin", "default; record 'order 77812'")

    def test_block_and_edge_routes_are_left_alone(self) -> None:
        policy = TomlPolicy(POLICY + '\n[decisions.abuse]\naction = "block"\n')
        assert policy.route(Intent("oos", "oos", 0.9, "abuse", 0.9), "ignore rules, order 77812").action == "block"

    def test_a_cache_records_rule_keeps_the_answer_for_its_asker(self) -> None:
        policy = TomlPolicy(POLICY.replace('nouns = ["order", "booking", "ticket", "claim"]\naction = "origin"',
                                           'nouns = ["order"]\naction = "cache"\nscope = "user"\nttl_s = 600'))
        route = policy.route(SHARED, "order 77812 arrived broken")
        assert (route.action, route.scope, route.ttl_s, route.stale_s) == ("cache", "user", 600, 0)

    @pytest.mark.parametrize(("table", "message"), [
        ('nouns = []\naction = "origin"', "non-empty list"),
        ('nouns = "order"\naction = "origin"', "non-empty list"),
        ('nouns = ["order!"]\naction = "origin"', "plain words"),
        ('nouns = ["order"]\naction = "block"', "stricter"),
        ('nouns = ["order"]\naction = "origin"\nmin_confidence = 0.5', "min_confidence"),
        ('nouns = ["order"]\naction = "cache"', "ttl_s"),
        ('nouns = ["order"]\naction = "origin"\ncues = ["x"]', "unknown key"),
    ])
    def test_a_bad_records_table_names_the_problem(self, table: str, message: str) -> None:
        assert_bad_table_names_the_problem("records", table, message)


class TestShippedPolicy:
    @pytest.mark.parametrize("text", ["Can I upgrade my booking ABX12 to business class?",
                                      "I need to change the name on my ticket order 77812",
                                      "Is it possible to get a refund for order 40021?",
                                      "what's happening with claim CLM-2291",
                                      "send my invoice to billing@acme.io"])
    def test_a_named_record_read_as_shared_reaches_no_other_user(self, text: str) -> None:
        for decision in ("shared", "small_talk", "time_sensitive"):
            route = load_policy().route(Intent("oos", "oos", 0.9, decision, 0.9), text)
            assert (route.action, route.scope) == ("origin", "none"), (decision, text)

    @pytest.mark.parametrize("text", ["How do I reset my password?", "Can I order 500 business cards?",
                                      "Is flight BA117 on time?", "What is the 2024 refund policy?",
                                      "Do you sell 128GB cards?"])
    def test_a_shareable_question_with_numbers_keeps_its_route(self, text: str) -> None:
        route = load_policy().route(SHARED, text)
        assert "record" not in route.reason, text
