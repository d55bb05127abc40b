"""The load test's question mix: drawn from the held-out banks, popular ones Zipf-style, fresh ones one-off.

Nothing here asks the model or the policy what they do with these questions: the mix is not chosen to fit them.
"""

from __future__ import annotations

import random

from loadtest.banks import texts
from loadtest.questions import (
    PERSONAL,
    SHAREABLE,
    SMALL_TALK_BANK,
    TIME_SENSITIVE,
    Zipf,
    chat_payload,
    fresh_question,
)


def test_the_mix_is_the_held_out_banks() -> None:
    """Every question of each bank is in the mix (in a seeded popularity order), and nothing else."""
    for mix, label in ((SHAREABLE, "shareable"), (PERSONAL, "personal"), (TIME_SENSITIVE, "time_sensitive"),
                       (SMALL_TALK_BANK, "small_talk")):
        assert sorted(mix) == sorted(texts(label)), label
    assert texts("shareable") != SHAREABLE  # popularity is a shuffle, not the order they were written in


def test_zipf_puts_most_draws_on_the_first_ranks() -> None:
    """A few popular questions dominate, as on a real site."""
    draws = Zipf(SHAREABLE, rng=random.Random(1))
    counts = [0] * len(SHAREABLE)
    for _ in range(20_000):
        counts[SHAREABLE.index(draws.draw())] += 1
    assert counts[0] > counts[9] > counts[99]
    assert sum(counts[:10]) > 0.4 * sum(counts)


def test_fresh_questions_are_nearly_never_repeated() -> None:
    """The long tail: out of 5,000 composed questions at most 1 % repeat."""
    rng = random.Random(3)
    questions = [fresh_question(rng) for _ in range(5000)]
    assert len(set(questions)) >= 0.99 * len(questions)
    assert not set(questions) & set(texts("fresh"))  # the eval's fresh bank stays one-off there


def test_payload_names_the_end_user() -> None:
    """The end user goes in OpenAI's ``user`` field; without one the field is absent."""
    assert chat_payload("hi", user="visitor-1")["user"] == "visitor-1"
    assert "user" not in chat_payload("hi", stream=True)
