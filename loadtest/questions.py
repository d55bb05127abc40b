"""What the simulated visitors ask: a bank of popular questions drawn Zipf-style, fresh ones, small talk.

Plain Python (no locust import), so the runner and the tests can use it too.
"""

from __future__ import annotations

import itertools
import random
import uuid

_TOPICS = ("my password", "my subscription", "my order", "my invoice", "two-factor authentication", "my email address",
           "my billing details", "my account", "a refund", "the mobile app", "my delivery address", "the API",
           "my team's seats", "data export", "the free trial", "my username", "notifications", "dark mode",
           "the browser extension", "my payment card")
_ASKS = ("How do I reset {}?", "How do I change {}?", "Where can I find {}?", "Why can't I update {}?",
         "What happens to {} when I cancel?", "Can support help me with {}?", "Is there a guide for {}?",
         "How long does it take to change {}?", "Who can see {}?", "How do I turn off {}?")
POPULAR = [ask.format(topic) for topic, ask in itertools.product(_TOPICS, _ASKS)]  # 200 questions
SMALL_TALK = ("hi", "hello", "thanks", "thank you!", "good morning", "hey there", "bye", "ok thanks",
              "how are you?", "who are you?")


class Zipf:
    """Draws ranks 1..n with probability proportional to 1 / rank**s: a few questions dominate."""

    def __init__(self, items: list[str], s: float = 1.1, rng: random.Random | None = None) -> None:
        self.items = items
        self._rng = rng or random.Random()
        weights = [1.0 / (rank ** s) for rank in range(1, len(items) + 1)]
        self._cumulative = list(itertools.accumulate(weights))

    def draw(self) -> str:
        return self._rng.choices(self.items, cum_weights=self._cumulative, k=1)[0]


def new_question(rng: random.Random | None = None) -> str:
    """A question nobody asked before: always a miss, so the origin pays for it."""
    topic = (rng or random).choice(_TOPICS)
    return f"Question {uuid.uuid4().hex[:12]}: what should I know about {topic}?"


def chat_payload(prompt: str, *, stream: bool = False, model: str = "eaves-default") -> dict[str, object]:
    payload: dict[str, object] = {"model": model, "messages": [{"role": "user", "content": prompt}]}
    if stream:
        payload["stream"] = True
    return payload
