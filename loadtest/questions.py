"""What the simulated visitors ask: a bank of popular questions drawn Zipf-style, fresh ones, small talk.

Plain Python (no locust import), so the runner and the tests can use it too.
"""

from __future__ import annotations

import itertools
import random
import uuid

# Questions whose answers are the same for everyone, in intents the shipped policy caches (recipes,
# definitions, fun facts, substitutions...): what repeat visitors ask. tests/loadtest checks that the
# shipped model and policy route them to the cache.
_FOODS = ("rice", "pancakes", "lasagna", "risotto", "banana bread", "chicken curry", "pad thai", "falafel",
          "tomato soup", "brownies")
_WORDS = ("ephemeral", "serendipity", "ubiquitous", "latency", "idempotent", "cache", "gateway", "quantum",
          "entropy", "paradigm")
_ANIMALS = ("octopuses", "owls", "sharks", "honey bees", "penguins", "elephants", "dolphins", "crows",
            "tardigrades", "koalas")
_INGREDIENTS = ("butter", "eggs", "buttermilk", "baking soda", "heavy cream", "sour cream", "honey", "cornstarch",
                "yeast", "brown sugar")
_ASKS = (
    (("How do I cook {}?", "Give me a recipe for {}", "How many calories are in {}?", "How long should I cook {}?",
      "Is {} healthy?", "How long does {} keep in the fridge?"), _FOODS),
    (("What does the word {} mean?", "Define {}", "How do you say {} in Spanish?", "How do you spell {}?"), _WORDS),
    (("Tell me a fun fact about {}", "What is an interesting fact about {}?"), _ANIMALS),
    (("What can I use instead of {}?", "What is a good substitute for {} when baking?"), _INGREDIENTS),
)
# 140 questions, interleaved so the most popular ranks span every kind of question.
POPULAR = [q for group in itertools.zip_longest(*[[ask.format(item) for ask in asks for item in items]
                                                  for asks, items in _ASKS]) for q in group if q]
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
    food = (rng or random).choice(_FOODS)
    return f"Question {uuid.uuid4().hex[:12]}: how do I cook {food}?"


def chat_payload(prompt: str, *, stream: bool = False, model: str = "eaves-default") -> dict[str, object]:
    payload: dict[str, object] = {"model": model, "messages": [{"role": "user", "content": prompt}]}
    if stream:
        payload["stream"] = True
    return payload
