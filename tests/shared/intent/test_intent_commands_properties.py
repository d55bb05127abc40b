"""Properties of the [commands] backstop (hypothesis is CPython-only here; the examples are in
test_intent_commands.py, which also runs inside Pyodide)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shared.intent import load_policy
from shared.intent.commands import CommandCues
from shared.intent.routing import DECISIONS, Intent

VERBS = ["cancel", "unsave", "delete", "move"]
OBJECTS = ["my", "the", "it"]
FILLER = st.lists(st.sampled_from(["hi", "Hello,", "please", "OK", "so"]), max_size=3).map(" ".join)


@given(FILLER, st.sampled_from(VERBS), st.sampled_from(OBJECTS), st.text(max_size=60),
       st.sampled_from(["", " ", "  ", "\n", "! "]))
def test_an_opening_command_is_found_whatever_follows(filler: str, verb: str, obj: str, rest: str,
                                                       space: str) -> None:
    text = f"{space}{filler} {verb.upper() if rest[:1] == 'x' else verb} {obj} {rest}"
    assert CommandCues(VERBS, OBJECTS).find(text) == f"{verb} {obj}"


@given(st.text(max_size=300))
def test_any_text_is_answered_with_two_of_its_words_or_nothing(text: str) -> None:
    found = CommandCues(VERBS, OBJECTS).find(text)
    assert found is None or (found.split()[0] in VERBS and found.split()[1] in OBJECTS
                             and found.split()[0] in text.lower())


@given(st.sampled_from(["how do I", "can I", "why did you", "what happens if I", "is it ok to"]),
       st.sampled_from(VERBS), st.sampled_from(OBJECTS), st.text(alphabet="abc ?", max_size=20))
def test_a_question_about_a_command_is_not_one(question: str, verb: str, obj: str, rest: str) -> None:
    assert CommandCues(VERBS, OBJECTS).find(f"{question} {verb} {obj} {rest}") is None


@given(st.sampled_from(DECISIONS), st.floats(0, 1), st.text(max_size=40),
       st.sampled_from(["", "cancel my", "Unsave the", "please delete it", "move my", "how do I cancel my"]))
def test_the_shipped_commands_rule_only_ever_makes_a_route_stricter(decision: str, confidence: float, text: str,
                                                                   opening: str) -> None:
    policy = load_policy()
    intent = Intent("oos", "oos", confidence, decision, confidence)
    chosen, final = policy.route(intent), policy.route(intent, f"{opening} {text}")
    width = {"none": 0, "user": 1, "shared": 2}
    assert width[final.scope] <= width[chosen.scope]
    if final.action != chosen.action:
        assert chosen.action == "cache" and final.action in ("cache", "origin")
