"""Properties of the [records] backstop (hypothesis is CPython-only here; the examples are in
test_intent_records.py, which also runs inside Pyodide)."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from shared.intent import load_policy
from shared.intent.records import RecordCues
from shared.intent.routing import DECISIONS, Intent, Route

NOUNS = ["order", "booking", "ticket", "claim", "gift card"]
LETTERS = st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZ", min_size=1, max_size=4)
DIGITS = st.text(alphabet="0123456789", min_size=1, max_size=6)


@st.composite
def codes(draw: st.DrawFn) -> str:
    """A booking code: letters then digits, maybe letters again ("ABX12", "KD93L", "Q7P2X"), 4+ characters."""
    code = draw(LETTERS) + draw(DIGITS) + draw(st.one_of(st.just(""), LETTERS))
    return code if len(code) >= 4 else code + "X" * (4 - len(code))


@given(st.sampled_from(NOUNS), codes(), st.sampled_from(["", "my ", "our ", "Your "]),
       st.sampled_from(["", " number", " ref", " no.", ":", " #", " is"]),
       st.text(alphabet="abc ?!.,", max_size=12), st.sampled_from(["", " ", "?", ", ", "."]),
       st.text(alphabet=" abc?!.,", max_size=12))
def test_a_code_after_a_record_noun_is_found(noun: str, code: str, owner: str, mark: str, before: str,
                                             sep: str, after: str) -> None:
    text = f"{before} {owner}{noun}{mark} {code}" + (f"{sep}{after}" if sep else "")
    found = RecordCues(NOUNS).find(text)
    assert found is not None and found.endswith(code)


@given(st.sampled_from(NOUNS), st.integers(10_000, 10**9), st.text(alphabet="abc ?", max_size=10))
def test_five_digits_after_a_record_noun_are_found(noun: str, number: int, after: str) -> None:
    assert RecordCues(NOUNS).find(f"what about {noun} {number} {after}") is not None


@given(st.text(max_size=300))
def test_any_text_is_answered_with_a_piece_of_it(text: str) -> None:
    found = RecordCues(NOUNS).find(text)
    assert found is None or found in " ".join(text.split())


@given(st.sampled_from(DECISIONS), st.floats(0, 1), st.text(max_size=40),
       st.sampled_from(["", "my order 55120", "booking ABX12", "a@b.io", "order 12", "now", "outage"]),
       st.sampled_from(["", "cancel my", "Unsave the", "please delete it", "how do I cancel my"]))
def test_the_shipped_backstops_only_ever_make_a_route_stricter(decision: str, confidence: float, text: str,
                                                              words: str, opening: str) -> None:
    """[records], [commands], [freshness] and [doubt] together: whatever the prompt and the reading."""
    policy = load_policy()
    intent = Intent("oos", "oos", confidence, decision, confidence)
    chosen, final = policy.route(intent), policy.route(intent, f"{opening} {text} {words}")
    width = {"none": 0, "user": 1, "shared": 2}
    assert width[final.scope] <= width[chosen.scope]
    assert kept(final) <= kept(chosen)
    if final.action != chosen.action:
        assert chosen.action == "cache" and final.action in ("cache", "origin")


def kept(route: Route) -> float:
    if route.action != "cache":
        return 0
    keep = math.inf if route.stale_if_error_s is None else route.stale_if_error_s
    return (route.ttl_s or 0) + route.stale_s + keep
