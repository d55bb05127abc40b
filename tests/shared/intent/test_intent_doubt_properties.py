"""Properties of the [doubt] table (hypothesis is CPython-only here; the examples are in
test_intent_doubt.py, which also runs inside Pyodide)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shared.intent.policy import TomlPolicy
from shared.intent.routing import DECISIONS, Intent
from tests.shared.intent.backstops import BASE_POLICY
from tests.shared.intent.test_intent_doubt import POLICY
from tests.shared.intent.test_intent_freshness_properties import kept

WIDTH = {"none": 0, "user": 1, "shared": 2}


@given(st.sampled_from(DECISIONS), st.lists(st.floats(0, 1), min_size=len(DECISIONS), max_size=len(DECISIONS)),
       st.text(max_size=30))
def test_it_only_ever_makes_a_route_stricter(decision: str, weights: list[float], text: str) -> None:
    """Whatever the decision head's spread, [doubt] keeps an answer no longer and for no more people than
    the rules without it; and an unsure reading is never kept past the rule's 300 s."""
    total = sum(weights) or 1.0
    spread = tuple((name, w / total) for name, w in zip(DECISIONS, weights, strict=True))
    intent = Intent("oos", "oos", 0.9, decision, dict(spread)[decision], spread)
    chosen, final = TomlPolicy(BASE_POLICY).route(intent, text), TomlPolicy(POLICY).route(intent, text)
    assert WIDTH[final.scope] <= WIDTH[chosen.scope]
    assert kept(final) <= kept(chosen)
    if intent.probability_of("time_sensitive") >= 0.01 and final.action == "cache":
        assert kept(final) <= 300
