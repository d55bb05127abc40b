"""Intent routing at the edge: a compact ONNX classifier and a TOML routing policy.

    classifier = load_classifier()          # the shipped CLINC150 model; onnxruntime if present
    policy = load_policy()                  # the shipped default policy
    route = policy.route(classifier.classify("hi there"))

Both are loaded once per (path, runtime) and cached: the edge loads them at import.
"""

from __future__ import annotations

from pathlib import Path

from shared.intent.classifier import OnnxIntentClassifier, read_model
from shared.intent.policy import PolicyError, TomlPolicy, load_policy_file
from shared.intent.routing import Intent, IntentClassifier, Route, RoutePolicy

__all__ = [
    "Intent",
    "IntentClassifier",
    "OnnxIntentClassifier",
    "PolicyError",
    "Route",
    "RoutePolicy",
    "TomlPolicy",
    "load_classifier",
    "load_policy",
]

_classifiers: dict[tuple[str, str], OnnxIntentClassifier] = {}
_policies: dict[str, TomlPolicy] = {}


def load_classifier(path: str | Path | None = None, runtime: str = "auto") -> OnnxIntentClassifier:
    """The intent model at ``path`` (None: the shipped one); runtime "auto", "onnxruntime" or "lite"."""
    data, source = read_model(path)
    key = (source, runtime)
    cached = _classifiers.get(key)
    if cached is None or cached.version != OnnxIntentClassifier.version_of(data):
        cached = _classifiers[key] = OnnxIntentClassifier(data, runtime=runtime, source=source)
    return cached


def load_policy(path: str | Path | None = None) -> TomlPolicy:
    """The routing policy at ``path`` (None: the shipped default)."""
    policy = load_policy_file(path)
    cached = _policies.get(policy.source)
    if cached is None or cached.version != policy.version:
        _policies[policy.source] = policy
        return policy
    return cached
