"""The [commands] backstop: a prompt that opens with a verb acting on the asker's own things ("Unsave the
chicken curry recipe", "cancel my 3 pm") is never stored for the tenant, whatever the decision head read
(issue 16: personal answers served across users). Standard library only: this file also runs inside Pyodide;
the properties are in test_intent_commands_properties.py."""

from __future__ import annotations

import pytest

from shared.intent import load_policy
from shared.intent.commands import CommandCues
from shared.intent.policy import TomlPolicy
from shared.intent.routing import Intent
from tests.shared.intent.backstops import BASE_POLICY, SHARED, assert_bad_table_names_the_problem

VERBS = ["cancel", "unsave", "delete", "move", "send", "remind"]
OBJECTS = ["my", "the", "this", "it", "me"]
POLICY = BASE_POLICY + '''
[commands]
verbs = ["cancel", "unsave", "delete"]
objects = ["my", "the", "it"]
action = "origin"

[freshness]
cues = ["now", "today"]
action = "cache"
scope = "user"
ttl_s = 60
'''


class TestCommandCues:
    @pytest.mark.parametrize(("text", "found"), [
        ("Unsave the chicken curry recipe", "unsave the"),
        ("cancel my 3pm", "cancel my"),
        ("Please delete this address.", "delete this"),
        ("hi there, please move it to Friday", "move it"),
        ("OK so send me the receipt again", "send me"),
        ("  REMIND ME tomorrow at 9", "remind me"),
        ("Hey! Cancel\nmy order", "cancel my"),
        ("Cancel my subscription" + " now" * 5000, "cancel my"),
    ])
    def test_a_command_on_the_askers_things_is_found(self, text: str, found: str) -> None:
        assert CommandCues(VERBS, OBJECTS).find(text) == found

    @pytest.mark.parametrize("text", [
        "How do I cancel my order?",              # asks how: the same answer for everyone
        "Can I cancel my booking for free?",      # a policy question
        "Delete a git branch",                    # no "my"/"the": asks how
        "Delete branches older than a month in git",
        "Explain the rules of cricket",           # a content verb, not listed
        "Write a haiku about the sea",
        "cancel", "", "the", "my order",          # no verb, or nothing after it
        "What does cancel my subscription mean?",
        "Remind everyone that the office is closed",  # "everyone" is not one of the objects
        "why is it cancelled",
        "hi hi hi hi hi cancel my order",         # the opening words are read, no further
    ])
    def test_leaves_other_prompts_alone(self, text: str) -> None:
        assert CommandCues(VERBS, OBJECTS).find(text) is None

    def test_a_verb_inside_another_word_does_not_count(self) -> None:
        assert CommandCues(["save"], ["the"]).find("unsave the recipe") is None
        assert CommandCues(["cancel"], ["my"]).find("cancelled my order?") is None

    def test_without_verbs_nothing_is_found(self) -> None:
        assert CommandCues([], []).find("cancel my order") is None

    @pytest.mark.parametrize(("verbs", "objects", "message"), [
        (["cancel it"], ["my"], "one word"),
        (["can't"], ["my"], "plain words"),
        (["x2"], ["my"], "one word"),
        (["cancel!"], ["my"], "plain words"),
        (["cancel"], [], "objects must name"),
    ])
    def test_a_bad_word_is_refused(self, verbs: list[str], objects: list[str], message: str) -> None:
        with pytest.raises(ValueError, match=message):
            CommandCues(verbs, objects)

    @pytest.mark.parametrize("text", ["cancel " * 3_000, "hi " * 6_000, "my " * 6_000, "'" * 16_000,
                                      "\u00e9" * 16_000, "cancel" * 2_700])
    def test_a_long_hostile_prompt_is_answered(self, text: str) -> None:
        """Bounded work: only the opening characters are read."""
        assert CommandCues(VERBS, OBJECTS).find(text) is None


class TestCommandsRule:
    def test_a_shared_reading_of_a_command_goes_to_the_origin(self) -> None:
        route = TomlPolicy(POLICY).route(SHARED, "Unsave the chicken curry recipe")
        assert (route.action, route.scope) == ("origin", "none")
        assert route.reason == "default; command 'unsave the'"

    def test_a_per_user_route_is_narrowed_too(self) -> None:
        policy = TomlPolicy(POLICY + '\n[decisions.time_sensitive]\naction = "cache"\nscope = "user"\nttl_s = 60\n')
        route = policy.route(Intent("oos", "oos", 0.9, "time_sensitive", 0.9), "cancel my table tonight")
        assert route.action == "origin"

    def test_without_a_command_the_rules_decide(self) -> None:
        route = TomlPolicy(POLICY).route(SHARED, "How do I delete my account?")
        assert (route.action, route.scope, route.reason) == ("cache", "shared", "default")

    def test_a_command_about_now_goes_to_the_origin_not_to_a_minute_cache(self) -> None:
        route = TomlPolicy(POLICY).route(SHARED, "cancel my booking today")
        assert (route.action, route.reason) == ("origin", "default; command 'cancel my'")

    def test_block_and_edge_routes_are_left_alone(self) -> None:
        policy = TomlPolicy(POLICY + '\n[decisions.abuse]\naction = "block"\n')
        assert policy.route(Intent("oos", "oos", 0.9, "abuse", 0.9), "delete the system prompt").action == "block"

    def test_a_cache_commands_rule_keeps_the_answer_for_its_asker(self) -> None:
        policy = TomlPolicy(POLICY.replace('objects = ["my", "the", "it"]\naction = "origin"',
                                           'objects = ["my"]\naction = "cache"\nscope = "user"\nttl_s = 600'))
        route = policy.route(SHARED, "cancel my order")
        assert (route.action, route.scope, route.ttl_s, route.stale_s) == ("cache", "user", 600, 0)

    @pytest.mark.parametrize(("table", "message"), [
        ('verbs = []\nobjects = ["my"]\naction = "origin"', "non-empty list"),
        ('verbs = "cancel"\nobjects = ["my"]\naction = "origin"', "non-empty list"),
        ('verbs = ["cancel"]\nobjects = []\naction = "origin"', "objects must name"),
        ('verbs = ["cancel"]\nobjects = "my"\naction = "origin"', "list of words"),
        ('verbs = ["cancel it"]\nobjects = ["my"]\naction = "origin"', "one word"),
        ('verbs = ["cancel"]\nobjects = ["my"]\naction = "block"', "stricter"),
        ('verbs = ["cancel"]\nobjects = ["my"]\naction = "origin"\nmin_confidence = 0.5', "min_confidence"),
        ('verbs = ["cancel"]\nobjects = ["my"]\naction = "cache"', "ttl_s"),
        ('verbs = ["cancel"]\nobjects = ["my"]\naction = "origin"\nnouns = ["x"]', "unknown key"),
    ])
    def test_a_bad_commands_table_names_the_problem(self, table: str, message: str) -> None:
        assert_bad_table_names_the_problem("commands", table, message)


class TestShippedPolicy:
    @pytest.mark.parametrize("text", ["Unsave the chicken curry recipe", "Cancel my 3 pm with Dr Patel",
                                      "please unsubscribe me from the newsletter", "Move it to Friday",
                                      "Reschedule my delivery", "Unfollow this playlist",
                                      "delete the last message I sent"])
    def test_a_command_read_as_shared_reaches_no_other_user(self, text: str) -> None:
        for decision in ("shared", "small_talk", "time_sensitive"):
            route = load_policy().route(Intent("oos", "oos", 0.9, decision, 0.9), text)
            assert (route.action, route.scope) == ("origin", "none"), (decision, text)

    @pytest.mark.parametrize("text", ["How do I cancel my subscription?", "Can I change my seat for free?",
                                      "Explain the difference between TCP and UDP.", "Write a haiku about the sea",
                                      "Give me a recipe for banana bread.", "Remove rust from cast iron",
                                      "Summarise the plot of Hamlet.", "What is the cancellation policy?"])
    def test_a_shareable_request_keeps_its_route(self, text: str) -> None:
        route = load_policy().route(SHARED, text)
        assert "command" not in route.reason, text
