"""The intent classifier the edge uses: featurise in plain Python, infer with one of two runtimes.

- ``onnxruntime``: CPython only; one intra-op thread, since one query is far too small to split.
- ``pooled``: pure Python, evaluating the intent graph's fixed shape directly (``pooled.py``); what
  ``auto`` and ``lite`` pick where onnxruntime is missing (the Worker asks for ``lite``); a graph of
  another shape runs in ``shared.onnx_lite`` instead (numpy when present, else pure Python).
- ``numpy`` and ``pure``: ``shared.onnx_lite``'s generic interpreter with that backend.

Both read the same file and its metadata (labels, domains, featuriser settings, out-of-scope threshold).
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from shared.intent.featurise import FeaturiserSettings, featurise
from shared.intent.pooled import PooledHeads
from shared.intent.routing import Intent
from shared.onnx_lite import MalformedModel, Model
from shared.onnx_lite.proto import ModelProto, parse_model

DEFAULT_MODEL = Path(__file__).parent / "data" / "intent.onnx"
RUNTIMES = ("auto", "onnxruntime", "pooled", "lite", "numpy", "pure")
_META = "eaves."


class Runtime(Protocol):
    name: str

    def heads(self, ids: list[int]) -> list[list[float]]: ...


class PooledRuntime:
    """Pure Python without the generic interpreter (``shared.intent.pooled``): the Workers path."""

    name = "pooled"

    def __init__(self, heads: PooledHeads) -> None:
        self._heads = heads

    def heads(self, ids: list[int]) -> list[list[float]]:
        return self._heads.run(ids)


class LiteRuntime:
    def __init__(self, data: bytes, backend: str = "auto") -> None:
        self.model = Model.load(data, backend=backend)
        self.name = f"onnx_lite-{self.model.backend}"
        self._outputs = [info.name for info in self.model.outputs]
        self._input = self.model.inputs[0].name

    def heads(self, ids: list[int]) -> list[list[float]]:
        out = self.model.run({self._input: ids})
        if self.model.backend == "numpy":
            return [[float(v) for v in out[name].reshape(-1)] for name in self._outputs]
        return [list(out[name].data) for name in self._outputs]


class OrtRuntime:
    name = "onnxruntime"

    def __init__(self, data: bytes) -> None:
        # Imported here only: onnxruntime does not exist inside Pyodide and costs ~100 ms to import.
        self._np = importlib.import_module("numpy")
        ort = importlib.import_module("onnxruntime")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
        self._input = self.session.get_inputs()[0].name
        self._outputs = [info.name for info in self.session.get_outputs()]

    def heads(self, ids: list[int]) -> list[list[float]]:
        feed = {self._input: self._np.asarray(ids, dtype=self._np.int64)}
        return [[float(v) for v in out.reshape(-1)] for out in self.session.run(self._outputs, feed)]


def make_runtime(data: bytes, runtime: str, parsed: ModelProto | None = None) -> Runtime:
    """``auto``: onnxruntime if importable, else the pooled path (the lite interpreter for other graphs).
    ``parsed``: the file already parsed, so a Worker's cold start reads the 1.9 MB model once, not twice."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {RUNTIMES}, not {runtime!r}")
    if runtime == "auto":
        try:
            importlib.import_module("onnxruntime")
        except ImportError:
            runtime = "pooled"
        else:
            runtime = "onnxruntime"
    if runtime == "onnxruntime":
        return OrtRuntime(data)
    if runtime in ("pooled", "lite"):
        heads = PooledHeads.match(parsed if parsed is not None else parse_model(data))
        if heads is not None:
            return PooledRuntime(heads)
        runtime = "pure" if runtime == "pooled" else "lite"  # another graph shape: the generic interpreter
    return LiteRuntime(data, backend="auto" if runtime == "lite" else runtime)


def _argmax(values: Sequence[float]) -> int:
    return max(range(len(values)), key=values.__getitem__)


def pick_decision(names: Sequence[str], probs: Sequence[float],
                  floors: Sequence[tuple[str, float]]) -> tuple[int, float]:
    """The decision for one prompt: among the decisions with a floor whose probability reaches it, the
    most likely; when none does, the most likely of all. Floors are how the costs of mistakes enter:
    serving one user's answer to another, or yesterday's price, is worse than one more trip to the
    origin, so "personal" and "time_sensitive" are decided from a probability well under one half."""
    reached = [names.index(name) for name, floor in floors if name in names and probs[names.index(name)] >= floor]
    best = max(reached, key=probs.__getitem__) if reached else _argmax(probs)
    return best, probs[best]


def read_intent(labels: Sequence[str], domains: Sequence[str], threshold: float, oos_label: str,
                probs: Sequence[float], decision: str = "", decision_confidence: float = 0.0,
                spread: tuple[tuple[str, float], ...] = ()) -> Intent:
    """The intent head's reading as the edge takes it: the most likely label, or ``oos_label`` (domain "oos")
    when that is under ``threshold`` or is the out-of-scope label itself; with the decision head's reading
    beside it. Training routes its dev rows through the same function (``train.policy_routes``)."""
    index = _argmax(probs)
    confidence = probs[index]
    label = labels[index]
    if confidence < threshold or label == oos_label:
        return Intent(oos_label, "oos", confidence, decision, decision_confidence, spread)
    return Intent(label, domains[index], confidence, decision, decision_confidence, spread)


class OnnxIntentClassifier:
    """Implements ``shared.intent.routing.IntentClassifier`` over an exported intent model."""

    def __init__(self, data: bytes, runtime: str = "auto", source: str = "<bytes>") -> None:
        parsed = parse_model(data)
        meta = parsed.metadata
        self.source = source
        try:
            self.labels: list[str] = json.loads(meta[_META + "labels"])
            self.domains: list[str] = json.loads(meta[_META + "domains"])
            self.settings = FeaturiserSettings.from_dict(json.loads(meta[_META + "featuriser"]))
            self.threshold = float(meta.get(_META + "oos_threshold", "0"))
            self.oos_label = meta.get(_META + "oos_label", "oos")
            self.decisions: list[str] = json.loads(meta.get(_META + "decisions", "[]"))
            self.floors: list[tuple[str, float]] = [
                (str(name), float(floor)) for name, floor in json.loads(meta.get(_META + "decision_floors", "[]"))]
        except KeyError as exc:
            raise MalformedModel(f"{source}: not an eaves intent model (metadata {exc.args[0]!r} is missing; "
                                 "train one with `eaves intent train`)") from exc
        except (ValueError, TypeError) as exc:
            raise MalformedModel(f"{source}: the intent model's metadata is invalid: {exc}") from exc
        if len(self.labels) != len(self.domains) or not self.labels:
            raise MalformedModel(f"{source}: metadata has {len(self.labels)} labels but "
                                 f"{len(self.domains)} domains")
        self.metadata = meta
        self.runtime: Runtime = make_runtime(data, runtime, parsed)
        # The version goes into cache keys: any change to the file's bytes must change it.
        self.version = self.version_of(data)

    @staticmethod
    def version_of(data: bytes) -> str:
        return "intent-" + hashlib.sha256(data).hexdigest()[:16]

    def features(self, text: str) -> list[int]:
        return featurise(text, self.settings)[0]

    def probabilities(self, text: str) -> dict[str, float]:
        return dict(zip(self.labels, self.runtime.heads(self.features(text))[0], strict=True))

    def decision_probabilities(self, text: str) -> dict[str, float]:
        outputs = self.runtime.heads(self.features(text))
        if not self.decisions or len(outputs) < 2:
            return {}
        return dict(zip(self.decisions, outputs[1], strict=True))

    def classify(self, text: str) -> Intent:
        outputs = self.runtime.heads(self.features(text))
        probs = outputs[0]
        decision, decision_confidence = "", 0.0
        spread: tuple[tuple[str, float], ...] = ()
        if self.decisions and len(outputs) > 1:
            chosen, decision_confidence = pick_decision(self.decisions, outputs[1], self.floors)
            decision = self.decisions[chosen]
            spread = tuple(zip(self.decisions, outputs[1], strict=True))
        return read_intent(self.labels, self.domains, self.threshold, self.oos_label, probs,
                           decision, decision_confidence, spread)


def read_model(path: str | Path | None) -> tuple[bytes, str]:
    target = Path(path) if path is not None else DEFAULT_MODEL
    try:
        return target.read_bytes(), str(target)
    except OSError as exc:
        raise MalformedModel(f"cannot read intent model {target}: {exc.strerror or exc}") from exc
