"""Score an intent classifier on labelled text: accuracy, out-of-scope recall, macro F1, latency.

Latency is featurise + infer for one query at a time, as the edge runs it, measured with
``time.perf_counter_ns`` around ``classify``; the first few queries warm caches and are not counted.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from shared.intent.dataset import NO_LABEL, OOS, Example
from shared.intent.routing import IntentClassifier, Route, RoutePolicy

WARMUP = 20


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of ``values``; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def scores(gold: Sequence[str], predicted: Sequence[str]) -> dict[str, Any]:
    """in_scope_accuracy, oos_recall (None without oos rows) and macro F1 over the gold labels."""
    pairs = list(zip(gold, predicted, strict=True))
    in_scope = [(g, p) for g, p in pairs if g != OOS]
    oos = [(g, p) for g, p in pairs if g == OOS]
    labels = sorted(set(gold))
    f1s = []
    for label in labels:
        tp = sum(1 for g, p in pairs if g == label and p == label)
        fp = sum(1 for g, p in pairs if g != label and p == label)
        fn = sum(1 for g, p in pairs if g == label and p != label)
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return {
        "examples": len(pairs),
        "in_scope_accuracy": sum(g == p for g, p in in_scope) / len(in_scope) if in_scope else None,
        "oos_recall": sum(p == OOS for _, p in oos) / len(oos) if oos else None,
        "macro_f1": sum(f1s) / len(f1s) if f1s else 0.0,
    }


def evaluate(classifier: IntentClassifier, examples: Sequence[Example]) -> dict[str, Any]:
    """Classify every example one at a time; scores plus p50/p99 latency in microseconds."""
    for ex in examples[:WARMUP]:
        classifier.classify(ex.text)
    predicted = []
    timings = []
    clock = time.perf_counter_ns
    for ex in examples:
        start = clock()
        intent = classifier.classify(ex.text)
        timings.append((clock() - start) / 1000)
        predicted.append(intent.label)
    labelled = [(ex.label, p) for ex, p in zip(examples, predicted, strict=True) if ex.label != NO_LABEL]
    result = scores([g for g, _ in labelled], [p for _, p in labelled])
    result["p50_us"] = round(percentile(timings, 50), 1)
    result["p99_us"] = round(percentile(timings, 99), 1)
    return result


# A cached answer is served for its TTL, then ``stale_s`` more while it refreshes, then (when the origin
# fails) ``stale_if_error_s`` more; a rule without ``stale_if_error_s`` gets the edge's STALE_IF_ERROR_S,
# one day by default (edge/settings.py). All of it counts as the oldest answer a route may serve.
EDGE_STALE_IF_ERROR_S = 86400
FRESH_LIMIT_S = 300  # time-sensitive answers: never served from an entry older than this


def oldest_served_s(route: Route) -> int:
    """The age of the oldest cached answer ``route`` may serve (0 when it stores nothing)."""
    if route.action != "cache" or route.scope == "none":
        return 0
    keep = EDGE_STALE_IF_ERROR_S if route.stale_if_error_s is None else route.stale_if_error_s
    return (route.ttl_s or 0) + route.stale_s + keep


def route_kind(route: Route) -> str:
    """``cache/shared``, ``cache/user``, ``origin``, ``edge``, ``block`` or ``async``."""
    return f"cache/{route.scope}" if route.action == "cache" else route.action


def crosses_users(label: str, route: Route) -> bool:
    """Whether a second user of the tenant would be served the first user's answer where that is wrong:
    a personal prompt stored for the whole tenant, or a time-sensitive one kept past FRESH_LIMIT_S."""
    shared = route.action == "cache" and route.scope == "shared"
    if label == "personal":
        return shared
    if label == "time_sensitive":
        return shared and oldest_served_s(route) > FRESH_LIMIT_S
    return False


def decision_scores(gold: Sequence[str], predicted: Sequence[str]) -> dict[str, Any]:
    """Accuracy and the confusion (gold -> predicted -> count) between decision labels."""
    confusion: dict[str, dict[str, int]] = {}
    for g, p in zip(gold, predicted, strict=True):
        row = confusion.setdefault(g, {})
        row[p] = row.get(p, 0) + 1
    right = sum(g == p for g, p in zip(gold, predicted, strict=True))
    return {"examples": len(gold), "accuracy": right / len(gold) if gold else None,
            "confusion": {g: dict(sorted(row.items())) for g, row in sorted(confusion.items())}}


def route_report(classifier: IntentClassifier, policy: RoutePolicy, examples: Sequence[Example]) -> dict[str, Any]:
    """Per decision label of the rows that have one: the share routed to each kind of route, the share a
    second user is served from the edge, and the share served across users where that is wrong.

    Keys (also in shared/intent/README.md): ``labels`` -> label -> ``n``, ``routes`` (kind -> share),
    ``decided`` (decision -> share), ``second_user_from_edge`` (cache/shared or edge), ``crosses_users``
    (personal: cache/shared; time_sensitive: cache/shared with an oldest answer over 300 s; else null);
    top level ``shareable_second_user_from_edge``, ``personal_crosses_users``,
    ``time_sensitive_over_300s``, ``decisions`` (accuracy, confusion) and ``examples``.
    """
    rows = [ex for ex in examples if ex.decision]
    found = [(ex, classifier.classify(ex.text)) for ex in rows]
    labels: dict[str, Any] = {}
    for ex, intent in found:
        label = str(ex.decision)
        route = policy.route(intent, ex.text)
        entry = labels.setdefault(label, {"n": 0, "routes": {}, "decided": {}, "second_user_from_edge": 0,
                                          "crosses_users": 0})
        entry["n"] += 1
        kind = route_kind(route)
        entry["routes"][kind] = entry["routes"].get(kind, 0) + 1
        decided = intent.decision or "-"
        entry["decided"][decided] = entry["decided"].get(decided, 0) + 1
        entry["second_user_from_edge"] += kind in ("cache/shared", "edge")
        entry["crosses_users"] += crosses_users(label, route)
    for label, entry in labels.items():
        n = entry["n"]
        entry["routes"] = {k: v / n for k, v in sorted(entry["routes"].items())}
        entry["decided"] = {k: v / n for k, v in sorted(entry["decided"].items())}
        entry["second_user_from_edge"] /= n
        entry["crosses_users"] = entry["crosses_users"] / n if label in ("personal", "time_sensitive") else None

    def share(label: str, key: str) -> float | None:
        return labels[label][key] if label in labels else None

    return {
        "examples": len(rows),
        "labels": dict(sorted(labels.items())),
        "shareable_second_user_from_edge": share("shared", "second_user_from_edge"),
        "personal_crosses_users": share("personal", "crosses_users"),
        "time_sensitive_over_300s": share("time_sensitive", "crosses_users"),
        "decisions": decision_scores([str(ex.decision) for ex, _ in found],
                                     [intent.decision or "-" for _, intent in found]),
    }
