"""The same operators as ``ops_pure`` over numpy arrays, used when numpy is importable.

Float arithmetic stays in the input's dtype (float32 for the models eaves ships), as onnxruntime's does.
This module is imported only after numpy has been found, so it may import numpy unconditionally.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from shared.onnx_lite.errors import InputShapeError, UnsupportedModel
from shared.onnx_lite.proto import DTYPES

Attrs = dict[str, Any]
Array = Any  # numpy.ndarray; Any keeps mypy from demanding numpy's generic parameters everywhere
Op = Callable[[Attrs, list[Array | None]], list[Array]]

_NP_DTYPES = {"float32": np.float32, "float16": np.float16, "float64": np.float64, "int8": np.int8,
              "uint8": np.uint8, "int16": np.int16, "uint16": np.uint16, "int32": np.int32,
              "uint32": np.uint32, "int64": np.int64, "uint64": np.uint64, "bool": np.bool_}


def np_dtype(name: str) -> Any:
    return _NP_DTYPES[name]


def _need(inputs: list[Array | None], index: int, op: str) -> Array:
    tensor = inputs[index] if index < len(inputs) else None
    if tensor is None:
        raise InputShapeError(f"{op}: required input {index} is missing")
    return tensor


def _guard(op: str, fn: Callable[[], Array]) -> Array:
    """Turn numpy's shape errors into the interpreter's own, naming the operator."""
    try:
        return fn()
    except (ValueError, IndexError) as exc:
        raise InputShapeError(f"{op}: {exc}") from exc


def _binary(fn: Callable[[Array, Array], Array], name: str) -> Op:
    def op(attrs: Attrs, inputs: list[Array | None]) -> list[Array]:
        a, b = _need(inputs, 0, name), _need(inputs, 1, name)
        return [_guard(name, lambda: np.asarray(fn(a, b)).astype(np.result_type(a, b), copy=False))]
    return op


def _div(a: Array, b: Array) -> Array:
    if np.issubdtype(a.dtype, np.integer):
        return np.trunc(a / b).astype(a.dtype)
    return a / b


def _unary(fn: Callable[[Array], Array], name: str) -> Op:
    def op(attrs: Attrs, inputs: list[Array | None]) -> list[Array]:
        x = _need(inputs, 0, name)
        return [np.asarray(fn(x)).astype(x.dtype, copy=False)]
    return op


def cast(attrs: Attrs, inputs: list[Array | None]) -> list[Array]:
    x = _need(inputs, 0, "Cast")
    to = int(attrs.get("to", 0))
    if to not in DTYPES:
        raise UnsupportedModel(f"Cast to data type {to} is not supported")
    return [x.astype(np_dtype(DTYPES[to][0]))]


def gather(attrs: Attrs, inputs: list[Array | None]) -> list[Array]:
    data, indices = _need(inputs, 0, "Gather"), _need(inputs, 1, "Gather")
    axis = int(attrs.get("axis", 0))
    rows = data.shape[axis] if data.ndim else 0
    if indices.size and (indices.min() < -rows or indices.max() >= rows):
        raise InputShapeError(f"Gather: an index is out of range for {rows} rows")
    return [np.take(data, indices, axis=axis)]


def _reduce(name: str, fn: Callable[..., Array]) -> Op:
    def op(attrs: Attrs, inputs: list[Array | None]) -> list[Array]:
        x = _need(inputs, 0, name)
        axes_t = inputs[1] if len(inputs) > 1 else None
        axes = [int(a) for a in axes_t] if axes_t is not None else list(attrs.get("axes", []))
        if not axes and int(attrs.get("noop_with_empty_axes", 0)):
            return [x]
        keepdims = bool(int(attrs.get("keepdims", 1)))
        axis = tuple(axes) if axes else None
        return [_guard(name, lambda: fn(x, axis=axis, keepdims=keepdims).astype(x.dtype, copy=False))]
    return op


def reshape(attrs: Attrs, inputs: list[Array | None]) -> list[Array]:
    x, shape_t = _need(inputs, 0, "Reshape"), _need(inputs, 1, "Reshape")
    shape = [int(v) for v in shape_t]
    for i, dim in enumerate(shape):
        if dim == 0 and not int(attrs.get("allowzero", 0)):
            shape[i] = x.shape[i]
    return [_guard("Reshape", lambda: x.reshape(shape))]


def _axes_of(attrs: Attrs, inputs: list[Array | None]) -> list[int]:
    axes_t = inputs[1] if len(inputs) > 1 else None
    return [int(v) for v in axes_t] if axes_t is not None else [int(a) for a in attrs.get("axes", [])]


def unsqueeze(attrs: Attrs, inputs: list[Array | None]) -> list[Array]:
    x = _need(inputs, 0, "Unsqueeze")
    axes = _axes_of(attrs, inputs)
    return [_guard("Unsqueeze", lambda: np.expand_dims(x, tuple(axes)))]


def squeeze(attrs: Attrs, inputs: list[Array | None]) -> list[Array]:
    x = _need(inputs, 0, "Squeeze")
    axes = _axes_of(attrs, inputs)
    return [_guard("Squeeze", lambda: np.squeeze(x, axis=tuple(axes) if axes else None))]


def flatten(attrs: Attrs, inputs: list[Array | None]) -> list[Array]:
    x = _need(inputs, 0, "Flatten")
    axis = int(attrs.get("axis", 1))
    axis = axis + x.ndim if axis < 0 else axis
    return [x.reshape(int(np.prod(x.shape[:axis])), -1)]


def matmul(attrs: Attrs, inputs: list[Array | None]) -> list[Array]:
    a, b = _need(inputs, 0, "MatMul"), _need(inputs, 1, "MatMul")
    return [_guard("MatMul", lambda: np.matmul(a, b))]


def gemm(attrs: Attrs, inputs: list[Array | None]) -> list[Array]:
    a, b = _need(inputs, 0, "Gemm"), _need(inputs, 1, "Gemm")
    c = inputs[2] if len(inputs) > 2 else None
    if int(attrs.get("transA", 0)):
        a = a.T
    if int(attrs.get("transB", 0)):
        b = b.T
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))

    def run() -> Array:
        y = a @ b
        if alpha != 1.0:
            y = y * a.dtype.type(alpha)
        if c is not None:
            y = y + (c if beta == 1.0 else c * a.dtype.type(beta))
        return y.astype(a.dtype, copy=False)
    return [_guard("Gemm", run)]


def softmax(attrs: Attrs, inputs: list[Array | None]) -> list[Array]:
    x = _need(inputs, 0, "Softmax")
    axis = int(attrs.get("axis", -1))

    def run() -> Array:
        e = np.exp(x - x.max(axis=axis, keepdims=True))
        return e / e.sum(axis=axis, keepdims=True)
    return [_guard("Softmax", run)]


def dequantize_linear(attrs: Attrs, inputs: list[Array | None]) -> list[Array]:
    x, scale = _need(inputs, 0, "DequantizeLinear"), _need(inputs, 1, "DequantizeLinear")
    zero = inputs[2] if len(inputs) > 2 else None
    if scale.size != 1 or (zero is not None and zero.size != 1):
        raise UnsupportedModel("DequantizeLinear is implemented for a single (per-tensor) scale only")
    z = zero.astype(np.int32) if zero is not None else 0
    return [((x.astype(np.int32) - z).astype(scale.dtype) * scale).astype(scale.dtype)]


def _sigmoid(x: Array) -> Array:
    return 1.0 / (1.0 + np.exp(-x))


OPS: dict[str, Op] = {
    "Add": _binary(np.add, "Add"),
    "Sub": _binary(np.subtract, "Sub"),
    "Mul": _binary(np.multiply, "Mul"),
    "Div": _binary(_div, "Div"),
    "Relu": _unary(lambda x: np.maximum(x, 0), "Relu"),
    "Sigmoid": _unary(_sigmoid, "Sigmoid"),
    "Tanh": _unary(np.tanh, "Tanh"),
    "Exp": _unary(np.exp, "Exp"),
    "Identity": lambda attrs, inputs: [_need(inputs, 0, "Identity")],
    "Cast": cast,
    "Gather": gather,
    "ReduceSum": _reduce("ReduceSum", np.sum),
    "ReduceMean": _reduce("ReduceMean", np.mean),
    "Reshape": reshape,
    "Unsqueeze": unsqueeze,
    "Squeeze": squeeze,
    "Flatten": flatten,
    "MatMul": matmul,
    "Gemm": gemm,
    "Softmax": softmax,
    "DequantizeLinear": dequantize_linear,
}
