"""The interpreter agrees with onnxruntime on the shipped model: via a committed fixture of onnxruntime's
outputs (so the check also runs inside Pyodide, without onnxruntime or numpy) and live when both exist."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shared.intent.classifier import DEFAULT_MODEL, OnnxIntentClassifier

FIXTURE = Path(__file__).parent / "fixtures" / "parity.json"
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def fixture() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(FIXTURE.read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def model_bytes() -> bytes:
    return DEFAULT_MODEL.read_bytes()


def _check(classifier: OnnxIntentClassifier, fixture: dict[str, Any]) -> None:
    worst = 0.0
    for query in fixture["queries"]:
        heads = classifier.runtime.heads(classifier.features(query["text"]))
        expected_heads = [query["probs"], query["decision_probs"]]
        assert len(heads) == len(expected_heads)
        for probs, expected in zip(heads, expected_heads, strict=True):
            worst = max(worst, max(abs(a - b) for a, b in zip(probs, expected, strict=True)))
            assert max(range(len(probs)), key=probs.__getitem__) == max(range(len(expected)),
                                                                        key=expected.__getitem__), query["text"]
    assert worst <= TOLERANCE


def test_fixture_matches_the_shipped_model(fixture: dict[str, Any], model_bytes: bytes) -> None:
    """The fixture was made from the model that ships; regenerate it with scripts/train-intent if not."""
    assert fixture["model_version"] == OnnxIntentClassifier.version_of(model_bytes)
    assert len(fixture["queries"]) >= 100


def test_pure_interpreter_matches_onnxruntime(fixture: dict[str, Any], model_bytes: bytes) -> None:
    """Pure Python reproduces onnxruntime's probabilities within 1e-5 and its predicted intent."""
    _check(OnnxIntentClassifier(model_bytes, runtime="pure"), fixture)


def test_pooled_path_matches_onnxruntime(fixture: dict[str, Any], model_bytes: bytes) -> None:
    """The Workers path (shared/intent/pooled.py) reproduces both heads within 1e-5 and their argmax."""
    classifier = OnnxIntentClassifier(model_bytes, runtime="pooled")
    assert classifier.runtime.name == "pooled"
    _check(classifier, fixture)


def test_numpy_interpreter_matches_onnxruntime(fixture: dict[str, Any], model_bytes: bytes) -> None:
    """The numpy backend reproduces onnxruntime's probabilities within 1e-5 and its predicted intent."""
    pytest.importorskip("numpy")
    _check(OnnxIntentClassifier(model_bytes, runtime="numpy"), fixture)


def test_live_onnxruntime_matches_fixture(fixture: dict[str, Any], model_bytes: bytes) -> None:
    """onnxruntime itself still gives the fixture's outputs (guards the fixture against drift)."""
    pytest.importorskip("onnxruntime")
    _check(OnnxIntentClassifier(model_bytes, runtime="onnxruntime"), fixture)
