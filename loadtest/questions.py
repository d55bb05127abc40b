"""What the simulated visitors ask, per label, and how often.

The load test's mix comes from the held-out question banks (``loadtest/banks``, see ``loadtest/README.md``),
which were written without looking at what the model or the policy does with them:

    shareable       popular questions, Zipf-distributed: many visitors ask the same few
    personal        asked by many visitors, each about their own account (each one its own end user)
    time_sensitive  questions about now, Zipf-distributed too
    fresh           one-off questions composed at random: the long tail, every one an origin call
    small_talk      greetings and thanks

The popularity order is a seeded shuffle of each bank, so no one chose which questions are the popular ones.

Plain Python (no locust import), so the runner and the tests can use it too.
"""

from __future__ import annotations

import itertools
import random
import uuid

from loadtest.banks import load_banks


def _popularity_order(questions: list[str], seed: int) -> list[str]:
    ordered = list(questions)
    random.Random(seed).shuffle(ordered)
    return ordered


_BANKS = {label: [q.text for q in questions] for label, questions in load_banks().items()}  # read once
SHAREABLE = _popularity_order(_BANKS["shareable"], 1)
PERSONAL = _popularity_order(_BANKS["personal"], 2)
TIME_SENSITIVE = _popularity_order(_BANKS["time_sensitive"], 3)
SMALL_TALK_BANK = _BANKS["small_talk"]

_FRESH_FORMS = (
    ("How many grams are in {n} ounces of {food}?", "How long should I bake {n} grams of {food} at {t} degrees?",
     "Scale a {food} recipe from 4 to {n} servings.", "What can I serve with {food} for {n} guests?"),
    ("Write a haiku about {thing} number {n}.", "Write a limerick about a {animal} named {name} aged {n}.",
     "Suggest names for a {animal} who loves {thing} and owns {n} hats.",
     "Tell a short story about {name} and a {animal} in the year {n}."),
    ("What is {n} times {m}?", "Convert {n}.{m} miles to kilometres.", "Is {n}{m} a prime number?",
     "What date is {n} days after January 1st {year}?"),
)
_SLOTS = {
    "food": ("lentil soup", "focaccia", "ratatouille", "shakshuka", "paella", "gnocchi", "apple crumble", "tofu"),
    "thing": ("a lighthouse", "an old bicycle", "a paper boat", "the first snow", "a teapot", "a subway train"),
    "animal": ("otter", "hedgehog", "parrot", "tortoise", "ferret", "llama", "gecko", "badger"),
    "name": ("Ada", "Noor", "Kofi", "Mateo", "Yuki", "Ingrid", "Ravi", "Zofia"),
}
# The questions the load test asked before the held-out banks: chosen among intents the shipped policy caches.
# The load test no longer asks them; they stay because a test (tests/shared/intent/test_intent_abuse.py)
# checks that the model never blocks them, and a test must not read the held-out banks (no model or policy
# choice may see those). shared/intent's benchmark reports on the banks themselves.
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


def fresh_question(rng: random.Random | None = None) -> str:
    """A one-off shareable question (a recipe scaled, a poem, a sum) composed at random: rarely asked twice."""
    rng = rng or random.Random()
    form = rng.choice(rng.choice(_FRESH_FORMS))
    return form.format(n=rng.randint(2, 9999), m=rng.randint(2, 9999), t=rng.randint(150, 260),
                       year=rng.randint(1900, 2100), **{slot: rng.choice(words) for slot, words in _SLOTS.items()})


def new_question(rng: random.Random | None = None) -> str:
    """A question nobody asked before (legacy form, for the abuse test; see POPULAR)."""
    food = (rng or random).choice(_FOODS)
    return f"Question {uuid.uuid4().hex[:12]}: how do I cook {food}?"


def chat_payload(prompt: str, *, stream: bool = False, model: str = "eaves-default",
                 user: str | None = None) -> dict[str, object]:
    """An OpenAI chat request; ``user`` names the end user, as a website's backend does (OpenAI's field)."""
    payload: dict[str, object] = {"model": model, "messages": [{"role": "user", "content": prompt}]}
    if stream:
        payload["stream"] = True
    if user is not None:
        payload["user"] = user
    return payload
