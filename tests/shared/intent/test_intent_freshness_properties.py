"""Properties of the [freshness] backstop (hypothesis is CPython-only here; the examples are in
test_intent_freshness.py, which also runs inside Pyodide)."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from shared.intent.freshness import NowCues, words_of
from shared.intent.policy import TomlPolicy
from shared.intent.routing import DECISIONS, Intent, Route
from tests.shared.intent.test_intent_freshness import POLICY

CUES = ["now", "today", "right now", "in stock"]


@given(st.lists(st.sampled_from(["how", "do", "i", "reset", "my", "password", "the", "price"]), max_size=8),
       st.lists(st.sampled_from(["how", "is", "it", "going"]), max_size=8),
       st.sampled_from(CUES))
def test_a_cue_among_any_words_is_found(before: list[str], after: list[str], cue: str) -> None:
    text = " ".join([*before, cue.upper() if len(before) % 2 else cue, *after]) + "?"
    assert NowCues(CUES).find(text) is not None


@given(st.text())
def test_words_are_lower_case_alphanumeric(text: str) -> None:
    for word in words_of(text):
        assert word and word == word.lower() and all(c.isascii() and c.isalnum() for c in word)


@given(st.sampled_from(DECISIONS), st.floats(0, 1), st.text(max_size=40),
       st.sampled_from(["", "now", "today", "right now", "in stock", "now today"]))
def test_it_only_ever_makes_a_route_stricter(decision: str, confidence: float, text: str,
                                            cue: str) -> None:
    """Whatever the prompt and the decision, the route with the text keeps an answer no longer and for
    no more people than the route the rules chose."""
    policy = TomlPolicy(POLICY)
    intent = Intent("oos", "oos", confidence, decision, confidence)
    chosen, final = policy.route(intent), policy.route(intent, f"{text} {cue}")
    width = {"none": 0, "user": 1, "shared": 2}
    assert width[final.scope] <= width[chosen.scope]
    assert kept(final) <= kept(chosen)
    if cue and chosen.action == "cache":
        assert final.ttl_s is not None and final.ttl_s + final.stale_s <= 60


def kept(route: Route) -> float:
    if route.action != "cache":
        return 0
    keep = math.inf if route.stale_if_error_s is None else route.stale_if_error_s
    return (route.ttl_s or 0) + route.stale_s + keep
