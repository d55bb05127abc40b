"""Score an intent classifier on labelled text: accuracy, out-of-scope recall, macro F1, latency.

Latency is featurise + infer for one query at a time, as the edge runs it, measured with
``time.perf_counter_ns`` around ``classify``; the first few queries warm caches and are not counted.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from shared.intent.dataset import OOS, Example
from shared.intent.routing import IntentClassifier

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
    result = scores([ex.label for ex in examples], predicted)
    result["p50_us"] = round(percentile(timings, 50), 1)
    result["p99_us"] = round(percentile(timings, 99), 1)
    return result
