"""`eaves intent classify`: the route it prints is the one the edge takes for the same text."""

from __future__ import annotations

import json
from typing import Any

import pytest

from eaves.cli import main
from shared.intent import load_classifier, load_policy


def classify(text: str, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["intent", "classify", text, "--json"]) == 0
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    return out


@pytest.mark.parametrize("text", [
    "How do I get notified when an item is back in stock?",  # read shared; [freshness]: "in stock"
    "Does the warranty on order 55120 cover water damage?",  # read shared; [records]: "order 55120"
    "How do I reset my password?",
])
def test_the_printed_route_is_the_edges(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The command routes with the prompt's text, as the edge does, so the backstops that read its words
    show (before, it routed the reading alone and printed an hour's shared cache for both questions above)."""
    assert "; " in load_policy().route(load_classifier().classify(text), text).reason or "password" in text
    expected = load_policy().route(load_classifier().classify(text), text)
    got = classify(text, capsys)
    assert (got["action"], got["scope"], got["ttl_s"], got["reason"]) == (
        expected.action, expected.scope, expected.ttl_s, expected.reason)


def test_a_backstop_shows_in_the_reason(capsys: pytest.CaptureFixture[str]) -> None:
    got = classify("Does the warranty on order 55120 cover water damage?", capsys)
    assert got["decision"] == "shared" and got["action"] == "origin" and "record 'order 55120'" in got["reason"]


def test_it_prints_every_decisions_probability(capsys: pytest.CaptureFixture[str]) -> None:
    got = classify("What is the capital of France?", capsys)
    spread = got["decision_probabilities"]
    assert set(spread) == {"shared", "personal", "time_sensitive", "small_talk", "abuse"}
    assert abs(sum(spread.values()) - 1.0) < 1e-4 and spread[got["decision"]] == got["decision_confidence"]
    capsys.readouterr()
    assert main(["intent", "classify", "What is the capital of France?"]) == 0
    assert "time_sensitive 0." in capsys.readouterr().out
