"""The contract between the intent model, the routing policy and the edge.

The edge asks an ``IntentClassifier`` what a prompt is about and a ``RoutePolicy`` what to do with it.
Both carry a ``version`` that goes into cache keys, so a new model or policy never serves an old answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

Action = Literal["block", "edge", "cache", "origin", "async"]
ACTIONS: tuple[Action, ...] = ("block", "edge", "cache", "origin", "async")
# Who may be served a stored answer: everyone in the tenant, only the end user who asked, or nobody.
Scope = Literal["shared", "user", "none"]
SCOPES: tuple[Scope, ...] = ("shared", "user", "none")
# The decision head's labels: answers anyone may share, answers about the asker's own account, data or
# devices (and commands on them), answers about now, chat, and attacks.
DECISIONS = ("shared", "personal", "time_sensitive", "small_talk", "abuse")
# The decisions of a prompt that asks for an answer: not chat, not an attack.
ANSWER_DECISIONS = ("shared", "personal", "time_sensitive")


@dataclass(frozen=True, slots=True)
class Intent:
    label: str  # e.g. "greeting", "oos" for out-of-scope
    domain: str  # e.g. "small_talk", "oos", "abuse"
    confidence: float
    # What the prompt asks of the cache, from the model's decision head ("" for a model without one):
    # one of DECISIONS. Scope and freshness follow from it, whatever the intent (most traffic is "oos").
    decision: str = ""
    decision_confidence: float = 0.0
    # Every decision's probability, in the model's order ((name, p), ...; empty without a decision head):
    # how unsure the head was, for rules that act on doubt (the policy's [doubt]).
    decision_probabilities: tuple[tuple[str, float], ...] = ()

    def probability_of(self, decision: str) -> float:
        """The decision head's probability for ``decision`` (0.0 when it has none)."""
        for name, p in self.decision_probabilities:
            if name == decision:
                return p
        return 0.0


@dataclass(frozen=True, slots=True)
class Route:
    action: Action
    ttl_s: int | None = None  # cache: how long an answer stays fresh
    stale_s: int = 0  # cache: how long past ttl it may still be served (stale-while-revalidate/-if-error)
    answer: str | None = None  # edge: the canned answer; also the fallback answer when the origin fails
    reason: str = ""  # why: "intent greeting", "domain abuse", ...
    stale_if_error_s: int | None = None  # cache: how long past ttl it may be served when the origin fails
    timeout_s: float | None = None  # how long this route may wait for the origin (None: the edge's default)
    scope: Scope = "shared"  # cache: shared by the tenant, per end user ("user"), or not kept ("none")


class IntentClassifier(Protocol):
    @property
    def version(self) -> str: ...

    def classify(self, text: str) -> Intent: ...


class RoutePolicy(Protocol):
    @property
    def version(self) -> str: ...

    def route(self, intent: Intent, text: str = "") -> Route:
        """What to do with a prompt the classifier read as ``intent``; ``text`` is the prompt itself, for
        rules that read its words (``[freshness]``)."""
        ...


@dataclass(frozen=True, slots=True)
class CacheEverything:
    """A policy with no model behind it: every prompt is cacheable for ``ttl_s``."""

    ttl_s: int = 3600
    stale_s: int = 300
    version: str = "cache-all-1"

    def route(self, intent: Intent, text: str = "") -> Route:
        return Route("cache", ttl_s=self.ttl_s, stale_s=self.stale_s, reason="default policy")


@dataclass(frozen=True, slots=True)
class NoClassifier:
    """Stands in when no intent model is configured: every prompt is out of scope."""

    version: str = "none"

    def classify(self, text: str) -> Intent:
        return Intent("oos", "oos", 0.0)
