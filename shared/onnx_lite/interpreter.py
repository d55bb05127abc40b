"""Load an ONNX model and evaluate its graph, in pure Python or with numpy when it is present.

    model = Model.load("intent.onnx")              # numpy if importable, else pure Python
    model = Model.load(data, backend="pure")       # force a backend
    probs = model.run({"ids": [[3, 17, 254]]})["probs"].tolist()

Everything a model can get wrong is checked once at load (well-formed protobuf, known operators,
inputs defined before use) so that ``run`` only has to check the caller's inputs.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from shared.onnx_lite.errors import InputShapeError, MalformedModel, UnsupportedOperator
from shared.onnx_lite.proto import DTYPES, AttributeProto, ModelProto, ValueInfo, parse_model
from shared.onnx_lite.tensor import FLOAT_DTYPES, PureTensor, tensor_values

_INT_DTYPES = frozenset({"int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"})


def numpy_available() -> bool:
    try:
        importlib.import_module("numpy")
    except ImportError:
        return False
    return True


def _attr_value(attr: AttributeProto) -> Any:
    # AttributeProto.AttributeType: FLOAT=1 INT=2 STRING=3 TENSOR=4 FLOATS=6 INTS=7 STRINGS=8.
    kinds = {1: attr.f, 2: attr.i, 3: attr.s, 6: attr.floats, 7: attr.ints, 8: attr.strings}
    if attr.type in kinds:
        return kinds[attr.type]
    if attr.type == 4:
        return attr.t
    # Writers older than IR version 3 leave the type out: infer it from the field that was set.
    if attr.ints:
        return attr.ints
    if attr.floats:
        return attr.floats
    if attr.t is not None:
        return attr.t
    return attr.i if attr.i else attr.f if attr.f else attr.s


class Model:
    """A loaded graph, ready to ``run``. Build it with ``Model.load``."""

    def __init__(self, proto: ModelProto, backend: str) -> None:
        if backend not in ("numpy", "pure"):
            raise ValueError(f"backend must be 'numpy' or 'pure', not {backend!r}")
        assert proto.graph is not None  # parse_model guarantees it
        self.backend = backend
        self.metadata: dict[str, str] = dict(proto.metadata)
        self.opsets = dict(proto.opsets)
        graph = proto.graph
        self.inputs: list[ValueInfo] = []
        self.outputs: list[ValueInfo] = list(graph.outputs)
        self._np: ModuleType | None = None
        if backend == "numpy":
            self._np = importlib.import_module("numpy")
            ops = importlib.import_module("shared.onnx_lite.ops_numpy").OPS
        else:
            ops = importlib.import_module("shared.onnx_lite.ops_pure").OPS
        self._constants: dict[str, Any] = {}
        for init in graph.initializers:
            self._constants[init.name] = self._from_proto(init)
        # Initializers may also be listed as inputs (IR < 4): those are not the caller's to feed.
        self.inputs = [info for info in graph.inputs if info.name not in self._constants]
        known = set(self._constants) | {info.name for info in self.inputs} | {""}
        self._plan: list[tuple[Any, dict[str, Any], list[str], list[str]]] = []
        for index, node in enumerate(graph.nodes):
            label = f"node {index} ({node.name or node.op_type})"
            if node.domain not in ("", "ai.onnx"):
                raise UnsupportedOperator(f"{label} uses op {node.op_type!r} from domain {node.domain!r}; "
                                          "onnx_lite implements only the default ONNX domain")
            if node.op_type not in ops:
                raise UnsupportedOperator(
                    f"{label} uses op {node.op_type!r}, which onnx_lite does not implement "
                    f"(supported: {', '.join(sorted(ops))})")
            attrs = {name: _attr_value(a) for name, a in node.attributes.items()}
            if node.op_type == "Constant":
                raise UnsupportedOperator(f"{label}: Constant nodes are not supported; use initializers")
            for name in node.inputs:
                if name not in known:
                    raise MalformedModel(f"{label} reads {name!r}, which no earlier node, input or "
                                         "initializer defines (graph not in topological order?)")
            known.update(node.outputs)
            self._plan.append((ops[node.op_type], attrs, list(node.inputs), list(node.outputs)))
        for info in self.outputs:
            if info.name not in known:
                raise MalformedModel(f"graph output {info.name!r} is never computed")

    @classmethod
    def load(cls, source: str | Path | bytes, backend: str = "auto") -> Model:
        """Read a model from a path or bytes; ``backend`` is "auto", "numpy" or "pure"."""
        if isinstance(source, bytes | bytearray):
            data = bytes(source)
        else:
            try:
                data = Path(source).read_bytes()
            except OSError as exc:
                raise MalformedModel(f"cannot read model file {source}: {exc.strerror or exc}") from exc
        if backend == "auto":
            backend = "numpy" if numpy_available() else "pure"
        return cls(parse_model(data), backend)

    def _from_proto(self, proto: Any) -> Any:
        dtype, values = tensor_values(proto)
        if self._np is not None:
            np = self._np
            from shared.onnx_lite.ops_numpy import np_dtype

            return np.asarray(values, dtype=np_dtype(dtype)).reshape(proto.dims)
        return PureTensor(proto.dims, dtype, values)

    def _check_input(self, info: ValueInfo, value: Any) -> Any:
        want = DTYPES.get(info.elem_type, ("?", "", 0))[0]
        if self._np is not None:
            np = self._np
            from shared.onnx_lite.ops_numpy import np_dtype

            try:
                arr = np.asarray(value, dtype=np_dtype(want) if want != "?" else None)
            except (ValueError, TypeError, OverflowError) as exc:
                raise InputShapeError(f"input {info.name!r}: cannot be read as {want}: {exc}") from exc
            shape: tuple[int, ...] = tuple(arr.shape)
            result: Any = arr
        else:
            shape, flat = _flatten(value, info.name)
            if want in _INT_DTYPES and not all(isinstance(v, int) for v in flat):
                raise InputShapeError(f"input {info.name!r} must hold integers ({want})")
            if want in FLOAT_DTYPES and not all(isinstance(v, int | float) for v in flat):
                raise InputShapeError(f"input {info.name!r} must hold numbers ({want})")
            result = PureTensor(shape, want, flat)
        if info.shape is not None:
            ok = len(shape) == len(info.shape) and all(
                not isinstance(d, int) or d < 0 or d == got for d, got in zip(info.shape, shape, strict=True))
            if not ok:
                declared = "[" + ", ".join(str(d) for d in info.shape) + "]"
                raise InputShapeError(f"input {info.name!r} has shape {list(shape)}, but the model "
                                      f"declares {declared}")
        return result

    def run(self, feeds: dict[str, Any]) -> dict[str, Any]:
        """Evaluate the graph; returns each graph output (numpy array or ``PureTensor``) by name."""
        missing = [info.name for info in self.inputs if info.name not in feeds]
        if missing:
            raise InputShapeError(f"missing input(s) {missing}; the model takes "
                                  f"{[info.name for info in self.inputs]}")
        extra = sorted(set(feeds) - {info.name for info in self.inputs})
        if extra:
            raise InputShapeError(f"unknown input(s) {extra}; the model takes "
                                  f"{[info.name for info in self.inputs]}")
        values: dict[str, Any] = dict(self._constants)
        for info in self.inputs:
            values[info.name] = self._check_input(info, feeds[info.name])
        for op, attrs, ins, outs in self._plan:
            results = op(attrs, [values[name] if name else None for name in ins])
            for name, result in zip(outs, results, strict=False):
                values[name] = result
        return {info.name: values[info.name] for info in self.outputs}


def _flatten(value: Any, name: str) -> tuple[tuple[int, ...], list[Any]]:
    """Shape and row-major values of nested sequences, refusing ragged ones."""
    if isinstance(value, PureTensor):
        return value.shape, list(value.data)
    shape: list[int] = []
    probe = value
    while isinstance(probe, Sequence) and not isinstance(probe, str | bytes):
        shape.append(len(probe))
        if not probe:
            break
        probe = probe[0]
    flat: list[Any] = [value]
    for depth, dim in enumerate(shape):
        nxt: list[Any] = []
        for item in flat:
            if not isinstance(item, Sequence) or isinstance(item, str | bytes) or len(item) != dim:
                raise InputShapeError(f"input {name!r} is ragged at depth {depth}: expected {dim} items")
            nxt.extend(item)
        flat = nxt
    return tuple(shape), flat
