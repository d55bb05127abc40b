"""What every runtime builds the edge from, read from one mapping of settings (the process environment
in the emulator, the Worker's ``env`` vars on Workers), so both runtimes configure the same way."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.intent.routing import CacheEverything, IntentClassifier, NoClassifier, RoutePolicy

_OFF = ("off", "0", "false", "none")


def uses_shipped_intent(values: Mapping[str, Any]) -> bool:
    """Whether ``values`` select the shipped model and policy (intent on, neither overridden): what a
    runtime can load before it has read its settings (the Worker does, at import)."""
    intent_on = str(values.get("EAVES_INTENT") or "on").lower() not in _OFF
    return intent_on and not values.get("EAVES_INTENT_MODEL") and not values.get("EAVES_POLICY")


def load_intent(values: Mapping[str, Any], runtime: str = "auto") -> tuple[IntentClassifier, RoutePolicy]:
    """The shipped (or configured) intent model and policy, or the model-less defaults when EAVES_INTENT=off:
    every prompt cached for EAVES_CACHE_TTL_S (3600) with EAVES_CACHE_STALE_S (300) more served stale."""
    if str(values.get("EAVES_INTENT") or "on").lower() in _OFF:
        ttl = int(values.get("EAVES_CACHE_TTL_S") or 3600)
        stale = int(values.get("EAVES_CACHE_STALE_S") or 300)
        return NoClassifier(), CacheEverything(ttl_s=ttl, stale_s=stale)
    from shared.intent import load_classifier, load_policy

    model = values.get("EAVES_INTENT_MODEL") or None
    policy = values.get("EAVES_POLICY") or None
    return load_classifier(model, runtime=runtime), load_policy(policy)
