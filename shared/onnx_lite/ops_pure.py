"""ONNX operators over ``PureTensor``: the path that runs where numpy does not (Pyodide offline).

Each operator takes the node's attributes and its input tensors (``None`` for an omitted optional
input) and returns its outputs. Semantics follow the ONNX operator specification for the listed opsets;
arithmetic is float64, so results agree with onnxruntime's float32 to about 1e-7.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence
from operator import add, mul, sub, truediv
from typing import Any

from shared.onnx_lite.errors import InputShapeError, UnsupportedModel
from shared.onnx_lite.tensor import FLOAT_DTYPES, PureTensor, size_of

Attrs = dict[str, Any]
Op = Callable[[Attrs, list[PureTensor | None]], list[PureTensor]]


def _need(inputs: list[PureTensor | None], index: int, op: str) -> PureTensor:
    tensor = inputs[index] if index < len(inputs) else None
    if tensor is None:
        raise InputShapeError(f"{op}: required input {index} is missing")
    return tensor


def _axis(axis: int, rank: int, op: str) -> int:
    if not -rank <= axis < max(rank, 1):
        raise InputShapeError(f"{op}: axis {axis} is out of range for a tensor of rank {rank}")
    return axis + rank if axis < 0 else axis


def _strides(shape: Sequence[int]) -> list[int]:
    strides = [1] * len(shape)
    for i in range(len(shape) - 2, -1, -1):
        strides[i] = strides[i + 1] * shape[i + 1]
    return strides


def broadcast_shape(a: Sequence[int], b: Sequence[int], op: str) -> tuple[int, ...]:
    rank = max(len(a), len(b))
    pa = [1] * (rank - len(a)) + list(a)
    pb = [1] * (rank - len(b)) + list(b)
    out = []
    for x, y in zip(pa, pb, strict=True):
        if x != y and 1 not in (x, y):
            raise InputShapeError(f"{op}: shapes {tuple(a)} and {tuple(b)} cannot be broadcast together")
        out.append(y if x == 1 else x)
    return tuple(out)


def _expand(t: PureTensor, shape: tuple[int, ...]) -> Sequence[Any]:
    """The values of ``t`` broadcast to ``shape``, in row-major order."""
    if t.shape == shape or (size_of(t.shape) == size_of(shape) and
                            [d for d in t.shape if d != 1] == [d for d in shape if d != 1]):
        return t.data  # only size-1 axes differ: the row-major order is the same
    rank = len(shape)
    src = [1] * (rank - len(t.shape)) + list(t.shape)
    src_strides = _strides(src)
    strides = [0 if dim == 1 else stride for dim, stride in zip(src, src_strides, strict=True)]
    out: list[Any] = []
    data = t.data
    index = [0] * rank
    for _ in range(size_of(shape)):
        out.append(data[sum(i * s for i, s in zip(index, strides, strict=True))])
        for k in range(rank - 1, -1, -1):
            index[k] += 1
            if index[k] < shape[k]:
                break
            index[k] = 0
    return out


def _binary(fn: Callable[[Any, Any], Any], name: str) -> Op:
    def op(attrs: Attrs, inputs: list[PureTensor | None]) -> list[PureTensor]:
        a, b = _need(inputs, 0, name), _need(inputs, 1, name)
        dtype = a.dtype if a.dtype in FLOAT_DTYPES or b.dtype not in FLOAT_DTYPES else b.dtype
        if a.shape == b.shape:
            return [PureTensor(a.shape, dtype, list(map(fn, a.data, b.data)))]
        if b.size == 1:
            y = b.data[0]
            return [PureTensor(broadcast_shape(a.shape, b.shape, name), dtype, [fn(x, y) for x in a.data])]
        if a.size == 1:
            x = a.data[0]
            return [PureTensor(broadcast_shape(a.shape, b.shape, name), dtype, [fn(x, y) for y in b.data])]
        shape = broadcast_shape(a.shape, b.shape, name)
        return [PureTensor(shape, dtype, list(map(fn, _expand(a, shape), _expand(b, shape))))]
    return op


def _int_div(x: Any, y: Any) -> Any:
    if isinstance(x, int) and isinstance(y, int):
        return int(x / y)  # ONNX integer Div truncates toward zero, like C
    return x / y


def _unary(fn: Callable[[Any], Any], name: str) -> Op:
    def op(attrs: Attrs, inputs: list[PureTensor | None]) -> list[PureTensor]:
        x = _need(inputs, 0, name)
        return [PureTensor(x.shape, x.dtype, [fn(v) for v in x.data])]
    return op


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def identity(attrs: Attrs, inputs: list[PureTensor | None]) -> list[PureTensor]:
    return [_need(inputs, 0, "Identity")]


def cast(attrs: Attrs, inputs: list[PureTensor | None]) -> list[PureTensor]:
    from shared.onnx_lite.proto import DTYPES

    x = _need(inputs, 0, "Cast")
    to = int(attrs.get("to", 0))
    if to not in DTYPES:
        raise UnsupportedModel(f"Cast to data type {to} is not supported")
    target = DTYPES[to][0]
    data: Sequence[Any] = x.data
    if target in ("float32", "float16"):
        code = "f" if target == "float32" else "e"
        if x.dtype in FLOAT_DTYPES and x.dtype != target:
            n = len(data)
            data = struct.unpack(f"<{n}{code}", struct.pack(f"<{n}{code}", *data))  # round to the target
        # Integers are exact in float32 up to 2**24 and Python arithmetic promotes them: no pass needed.
    elif target == "float64":
        pass
    elif target == "bool":
        data = [bool(v) for v in data]
    else:
        data = [int(v) for v in data]  # int() truncates toward zero, as C casts do
    return [PureTensor(x.shape, target, data)]


def gather(attrs: Attrs, inputs: list[PureTensor | None]) -> list[PureTensor]:
    data, indices = _need(inputs, 0, "Gather"), _need(inputs, 1, "Gather")
    axis = _axis(int(attrs.get("axis", 0)), len(data.shape), "Gather")
    if axis != 0:
        raise UnsupportedModel("Gather is implemented for axis 0 only")
    rows = data.shape[0]
    width = size_of(data.shape[1:])
    values = data.data
    out: list[Any] = []
    for raw in indices.data:
        i = int(raw)
        if not -rows <= i < rows:
            raise InputShapeError(f"Gather: index {i} is out of range for {rows} rows")
        if i < 0:
            i += rows
        start = i * width
        out.extend(values[start:start + width])
    return [PureTensor(indices.shape + data.shape[1:], data.dtype, out)]


def _reduce(name: str, mean: bool) -> Op:
    def op(attrs: Attrs, inputs: list[PureTensor | None]) -> list[PureTensor]:
        x = _need(inputs, 0, name)
        axes_t = inputs[1] if len(inputs) > 1 else None
        axes = [int(a) for a in axes_t.data] if axes_t is not None else list(attrs.get("axes", []))
        keepdims = int(attrs.get("keepdims", 1))
        rank = len(x.shape)
        if not axes:
            if int(attrs.get("noop_with_empty_axes", 0)):
                return [x]
            axes = list(range(rank))
        axes = sorted({_axis(a, rank, name) for a in axes})
        keep = [d for d in range(rank) if d not in axes]
        count = size_of([x.shape[d] for d in axes])
        out_shape = [x.shape[d] for d in keep]
        data = x.data
        if axes == list(range(len(keep), rank)):
            # Reduced axes last: each output value sums one contiguous run (a C-level sum).
            sums = [sum(data[i:i + count]) for i in range(0, len(data), count)] if count else []
        elif axes == list(range(len(axes))):
            # Reduced axes first: each output value sums a strided slice.
            outer = size_of(out_shape)
            sums = [sum(data[j::outer]) for j in range(outer)]
        else:
            raise UnsupportedModel(f"{name} over axes {axes} of a rank-{rank} tensor is not implemented "
                                   "(only leading or trailing axes are)")
        if mean:
            sums = [s / count for s in sums]
        shape = [1 if d in axes else x.shape[d] for d in range(rank)] if keepdims else out_shape
        dtype = x.dtype if mean is False or x.dtype in FLOAT_DTYPES else "float32"
        return [PureTensor(shape, dtype, sums)]
    return op


def _shape_values(t: PureTensor) -> list[int]:
    return [int(v) for v in t.data]


def reshape(attrs: Attrs, inputs: list[PureTensor | None]) -> list[PureTensor]:
    x, shape_t = _need(inputs, 0, "Reshape"), _need(inputs, 1, "Reshape")
    shape = _shape_values(shape_t)
    for i, dim in enumerate(shape):
        if dim == 0 and not int(attrs.get("allowzero", 0)):
            shape[i] = x.shape[i]
    if shape.count(-1) > 1:
        raise InputShapeError("Reshape: more than one -1 in the target shape")
    if -1 in shape:
        known = size_of([d for d in shape if d != -1])
        shape[shape.index(-1)] = x.size // known if known else 0
    if size_of(shape) != x.size:
        raise InputShapeError(f"Reshape: cannot reshape {x.shape} into {tuple(shape)}")
    return [PureTensor(shape, x.dtype, x.data)]


def _axes_of(attrs: Attrs, inputs: list[PureTensor | None]) -> list[int]:
    axes_t = inputs[1] if len(inputs) > 1 else None
    return _shape_values(axes_t) if axes_t is not None else [int(a) for a in attrs.get("axes", [])]


def unsqueeze(attrs: Attrs, inputs: list[PureTensor | None]) -> list[PureTensor]:
    x = _need(inputs, 0, "Unsqueeze")
    axes = _axes_of(attrs, inputs)
    rank = len(x.shape) + len(axes)
    axes = sorted(_axis(a, rank, "Unsqueeze") for a in axes)
    shape = list(x.shape)
    for a in axes:
        shape.insert(a, 1)
    return [PureTensor(shape, x.dtype, x.data)]


def squeeze(attrs: Attrs, inputs: list[PureTensor | None]) -> list[PureTensor]:
    x = _need(inputs, 0, "Squeeze")
    axes = _axes_of(attrs, inputs)
    rank = len(x.shape)
    drop = {_axis(a, rank, "Squeeze") for a in axes} if axes else {d for d in range(rank) if x.shape[d] == 1}
    for d in drop:
        if x.shape[d] != 1:
            raise InputShapeError(f"Squeeze: axis {d} of shape {x.shape} is not 1")
    return [PureTensor([x.shape[d] for d in range(rank) if d not in drop], x.dtype, x.data)]


def flatten(attrs: Attrs, inputs: list[PureTensor | None]) -> list[PureTensor]:
    x = _need(inputs, 0, "Flatten")
    axis = _axis(int(attrs.get("axis", 1)), len(x.shape) + 1, "Flatten")
    return [PureTensor([size_of(x.shape[:axis]), size_of(x.shape[axis:])], x.dtype, x.data)]


def _dot(x: Sequence[Any], y: Sequence[Any]) -> Any:
    return sum(map(mul, x, y))


# math.sumprod (3.12+, so inside Pyodide) is one C loop with extended precision: ~4x faster per dot.
_sumprod: Callable[[Sequence[Any], Sequence[Any]], Any] = getattr(math, "sumprod", _dot)


def _matmul2d(a: PureTensor, b_cols: list[list[Any]], rows: int, inner: int) -> list[Any]:
    out: list[Any] = []
    data = a.data
    dot = _sumprod
    for r in range(rows):
        row = list(data[r * inner:(r + 1) * inner])
        out.extend([dot(row, col) for col in b_cols])
    return out


def _transpose2d(t: PureTensor) -> PureTensor:
    rows, cols = t.shape
    data = t.data
    return PureTensor((cols, rows), t.dtype, [data[r * cols + c] for c in range(cols) for r in range(rows)])


def matmul(attrs: Attrs, inputs: list[PureTensor | None]) -> list[PureTensor]:
    a, b = _need(inputs, 0, "MatMul"), _need(inputs, 1, "MatMul")
    if len(a.shape) != 2 or len(b.shape) != 2:
        raise UnsupportedModel(f"MatMul is implemented for 2-D inputs only, got {a.shape} and {b.shape}")
    if a.shape[1] != b.shape[0]:
        raise InputShapeError(f"MatMul: shapes {a.shape} and {b.shape} do not align")
    out = _matmul2d(a, b.columns(), a.shape[0], a.shape[1])
    return [PureTensor((a.shape[0], b.shape[1]), a.dtype, out)]


def gemm(attrs: Attrs, inputs: list[PureTensor | None]) -> list[PureTensor]:
    a, b = _need(inputs, 0, "Gemm"), _need(inputs, 1, "Gemm")
    c = inputs[2] if len(inputs) > 2 else None
    if len(a.shape) != 2 or len(b.shape) != 2:
        raise InputShapeError(f"Gemm: inputs must be 2-D, got {a.shape} and {b.shape}")
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    if int(attrs.get("transA", 0)):
        a = _transpose2d(a)
    # With transB the rows of B are the columns we need, which is why exporters favour it.
    cols = b.rows() if int(attrs.get("transB", 0)) else b.columns()
    inner = len(cols[0]) if cols else 0
    if a.shape[1] != inner:
        raise InputShapeError(f"Gemm: A has {a.shape[1]} columns but B has {inner} rows")
    out = _matmul2d(a, cols, a.shape[0], inner)
    if alpha != 1.0:
        out = [alpha * v for v in out]
    shape = (a.shape[0], len(cols))
    if c is not None:
        bias = _expand(c, broadcast_shape(shape, c.shape, "Gemm")) if c.shape != shape else c.data
        if len(bias) != len(out):
            raise InputShapeError(f"Gemm: C of shape {c.shape} does not broadcast to {shape}")
        scaled = bias if beta == 1.0 else [beta * v for v in bias]
        out = list(map(add, out, scaled))
    return [PureTensor(shape, a.dtype, out)]


def softmax(attrs: Attrs, inputs: list[PureTensor | None]) -> list[PureTensor]:
    x = _need(inputs, 0, "Softmax")
    rank = len(x.shape)
    axis = _axis(int(attrs.get("axis", -1)), rank, "Softmax")
    if axis != rank - 1:
        raise UnsupportedModel("Softmax is implemented over the last axis only")
    width = x.shape[-1] if x.shape else 1
    out: list[float] = []
    data = x.data
    exp = math.exp
    for start in range(0, len(data), width):
        row = data[start:start + width]
        top = max(row)
        exps = [exp(v - top) for v in row]
        total = math.fsum(exps)
        out.extend(e / total for e in exps)
    return [PureTensor(x.shape, x.dtype, out)]


def dequantize_linear(attrs: Attrs, inputs: list[PureTensor | None]) -> list[PureTensor]:
    x, scale = _need(inputs, 0, "DequantizeLinear"), _need(inputs, 1, "DequantizeLinear")
    zero = inputs[2] if len(inputs) > 2 else None
    if scale.size != 1 or (zero is not None and zero.size != 1):
        raise UnsupportedModel("DequantizeLinear is implemented for a single (per-tensor) scale only")
    s = scale.data[0]
    z = zero.data[0] if zero is not None else 0
    return [PureTensor(x.shape, scale.dtype, [(v - z) * s for v in x.data])]


OPS: dict[str, Op] = {
    "Add": _binary(add, "Add"),
    "Sub": _binary(sub, "Sub"),
    "Mul": _binary(mul, "Mul"),
    "Div": _binary(lambda x, y: _int_div(x, y) if isinstance(x, int) else truediv(x, y), "Div"),
    "Relu": _unary(lambda v: v if v > 0 else 0.0 * v, "Relu"),
    "Sigmoid": _unary(_sigmoid, "Sigmoid"),
    "Tanh": _unary(math.tanh, "Tanh"),
    "Exp": _unary(math.exp, "Exp"),
    "Identity": identity,
    "Cast": cast,
    "Gather": gather,
    "ReduceSum": _reduce("ReduceSum", mean=False),
    "ReduceMean": _reduce("ReduceMean", mean=True),
    "Reshape": reshape,
    "Unsqueeze": unsqueeze,
    "Squeeze": squeeze,
    "Flatten": flatten,
    "MatMul": matmul,
    "Gemm": gemm,
    "Softmax": softmax,
    "DequantizeLinear": dequantize_linear,
}
