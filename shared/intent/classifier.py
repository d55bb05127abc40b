"""The intent classifier the edge uses: featurise in plain Python, infer with one of two runtimes.

- ``onnxruntime``: CPython only; one intra-op thread, since one query is far too small to split.
- ``lite``: ``shared.onnx_lite``, pure Python or numpy; the only choice inside Pyodide.

Both read the same file and its metadata (labels, domains, featuriser settings, out-of-scope threshold).
"""

from __future__ import annotations

import hashlib
import importlib
import json
from pathlib import Path
from typing import Any, Protocol

from shared.intent.featurise import FeaturiserSettings, featurise
from shared.intent.routing import Intent
from shared.onnx_lite import MalformedModel, Model
from shared.onnx_lite.proto import parse_model

DEFAULT_MODEL = Path(__file__).parent / "data" / "intent.onnx"
RUNTIMES = ("auto", "onnxruntime", "lite", "numpy", "pure")
_META = "eaves."


class Runtime(Protocol):
    name: str

    def probs(self, ids: list[int]) -> list[float]: ...

    def best(self, ids: list[int]) -> tuple[int, float]: ...


class LiteRuntime:
    def __init__(self, data: bytes, backend: str = "auto") -> None:
        self.model = Model.load(data, backend=backend)
        self.name = f"onnx_lite-{self.model.backend}"
        self._output = self.model.outputs[0].name
        self._input = self.model.inputs[0].name

    def probs(self, ids: list[int]) -> list[float]:
        out = self.model.run({self._input: ids})[self._output]
        if self.model.backend == "numpy":
            return [float(v) for v in out.reshape(-1)]
        return list(out.data)

    def best(self, ids: list[int]) -> tuple[int, float]:
        if self.model.backend == "numpy":
            out = self.model.run({self._input: ids})[self._output].reshape(-1)
            index = int(out.argmax())
            return index, float(out[index])
        probs = self.probs(ids)
        top = max(range(len(probs)), key=probs.__getitem__)
        return top, probs[top]


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
        self._output = self.session.get_outputs()[0].name

    def _run(self, ids: list[int]) -> Any:
        feed = {self._input: self._np.asarray(ids, dtype=self._np.int64)}
        return self.session.run([self._output], feed)[0].reshape(-1)

    def probs(self, ids: list[int]) -> list[float]:
        return [float(v) for v in self._run(ids)]

    def best(self, ids: list[int]) -> tuple[int, float]:
        probs = self._run(ids)
        top = int(probs.argmax())
        return top, float(probs[top])


def make_runtime(data: bytes, runtime: str) -> Runtime:
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {RUNTIMES}, not {runtime!r}")
    if runtime == "auto":
        try:
            importlib.import_module("onnxruntime")
        except ImportError:
            runtime = "lite"
        else:
            runtime = "onnxruntime"
    if runtime == "onnxruntime":
        return OrtRuntime(data)
    return LiteRuntime(data, backend="auto" if runtime == "lite" else runtime)


class OnnxIntentClassifier:
    """Implements ``shared.intent.routing.IntentClassifier`` over an exported intent model."""

    def __init__(self, data: bytes, runtime: str = "auto", source: str = "<bytes>") -> None:
        meta = parse_model(data).metadata
        self.source = source
        try:
            self.labels: list[str] = json.loads(meta[_META + "labels"])
            self.domains: list[str] = json.loads(meta[_META + "domains"])
            self.settings = FeaturiserSettings.from_dict(json.loads(meta[_META + "featuriser"]))
            self.threshold = float(meta.get(_META + "oos_threshold", "0"))
            self.oos_label = meta.get(_META + "oos_label", "oos")
        except KeyError as exc:
            raise MalformedModel(f"{source}: not an eaves intent model (metadata {exc.args[0]!r} is missing; "
                                 "train one with `eaves intent train`)") from exc
        except (ValueError, TypeError) as exc:
            raise MalformedModel(f"{source}: the intent model's metadata is invalid: {exc}") from exc
        if len(self.labels) != len(self.domains) or not self.labels:
            raise MalformedModel(f"{source}: metadata has {len(self.labels)} labels but "
                                 f"{len(self.domains)} domains")
        self.metadata = meta
        self.runtime: Runtime = make_runtime(data, runtime)
        # The version goes into cache keys: any change to the file's bytes must change it.
        self.version = self.version_of(data)

    @staticmethod
    def version_of(data: bytes) -> str:
        return "intent-" + hashlib.sha256(data).hexdigest()[:16]

    def features(self, text: str) -> list[int]:
        return featurise(text, self.settings)[0]

    def probabilities(self, text: str) -> dict[str, float]:
        return dict(zip(self.labels, self.runtime.probs(self.features(text)), strict=True))

    def classify(self, text: str) -> Intent:
        index, confidence = self.runtime.best(self.features(text))
        label = self.labels[index]
        if confidence < self.threshold or label == self.oos_label:
            return Intent(self.oos_label, "oos", confidence)
        return Intent(label, self.domains[index], confidence)


def read_model(path: str | Path | None) -> tuple[bytes, str]:
    target = Path(path) if path is not None else DEFAULT_MODEL
    try:
        return target.read_bytes(), str(target)
    except OSError as exc:
        raise MalformedModel(f"cannot read intent model {target}: {exc.strerror or exc}") from exc
