"""Properties of the [commands] backstop (hypothesis is CPython-only here; the examples are in
test_intent_commands.py, which also runs inside Pyodide; that the shipped backstops together only ever narrow
a route is in test_intent_records_properties.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shared.intent.commands import CommandCues

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
