"""The load test's question bank must exercise the routes it claims to with the shipped model and policy."""

from __future__ import annotations

import random

from loadtest.questions import POPULAR, SMALL_TALK, Zipf, new_question
from shared.intent import load_classifier, load_policy


def test_popular_questions_are_cacheable_and_never_blocked() -> None:
    classifier, policy = load_classifier(), load_policy()
    actions = [policy.route(classifier.classify(q)).action for q in POPULAR]
    assert "block" not in actions
    # A retrained model may move a question or two; the repeat-visitor scenario needs nearly all cached.
    assert actions.count("cache") >= 0.95 * len(POPULAR), actions


def test_new_questions_and_small_talk_are_never_blocked() -> None:
    classifier, policy = load_classifier(), load_policy()
    rng = random.Random(7)
    prompts = [new_question(rng) for _ in range(200)] + list(SMALL_TALK)
    blocked = [p for p in prompts if policy.route(classifier.classify(p)).action == "block"]
    assert blocked == []


def test_zipf_puts_most_draws_on_the_first_ranks() -> None:
    draws = Zipf(POPULAR, rng=random.Random(1))
    counts = [0] * len(POPULAR)
    for _ in range(20_000):
        counts[POPULAR.index(draws.draw())] += 1
    assert counts[0] > counts[9] > counts[99]
    assert sum(counts[:10]) > 0.4 * sum(counts)
