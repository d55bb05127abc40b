"""Operators of the pure-Python backend against hand-computed results and, when present, numpy's."""

from __future__ import annotations

import math
from typing import Any

import pytest

from shared.onnx_lite import InputShapeError, UnsupportedModel
from shared.onnx_lite.ops_pure import OPS
from shared.onnx_lite.tensor import PureTensor


def t(shape: tuple[int, ...], data: list[Any], dtype: str = "float32") -> PureTensor:
    return PureTensor(shape, dtype, data)


class TestElementwise:
    def test_broadcast_row_times_column(self) -> None:
        """Mul broadcasts a [2,1] column against a [1,3] row into a [2,3] table."""
        (out,) = OPS["Mul"]({}, [t((2, 1), [1.0, 2.0]), t((1, 3), [1.0, 10.0, 100.0])])
        assert out.shape == (2, 3)
        assert list(out.data) == [1.0, 10.0, 100.0, 2.0, 20.0, 200.0]

    def test_scalar_add(self) -> None:
        """Add with a one-element tensor adds it everywhere."""
        (out,) = OPS["Add"]({}, [t((3,), [1.0, 2.0, 3.0]), t((), [0.5])])
        assert list(out.data) == [1.5, 2.5, 3.5]

    def test_incompatible_shapes(self) -> None:
        """Shapes that cannot broadcast raise InputShapeError naming both."""
        with pytest.raises(InputShapeError, match=r"\(2,\) and \(3,\)"):
            OPS["Sub"]({}, [t((2,), [1.0, 2.0]), t((3,), [1.0, 2.0, 3.0])])

    def test_relu_and_softmax(self) -> None:
        """Relu clamps negatives; Softmax rows sum to one and keep order."""
        (relu,) = OPS["Relu"]({}, [t((3,), [-1.0, 0.0, 2.0])])
        assert list(relu.data) == [0.0, 0.0, 2.0]
        (soft,) = OPS["Softmax"]({"axis": -1}, [t((1, 3), [1.0, 2.0, 3.0])])
        assert math.isclose(sum(soft.data), 1.0)
        assert soft.data[2] > soft.data[1] > soft.data[0]


class TestStructure:
    def test_gather_rows(self) -> None:
        """Gather on axis 0 picks rows, with negative indices counting from the end."""
        table = t((3, 2), [1, 2, 3, 4, 5, 6], "int8")
        (out,) = OPS["Gather"]({"axis": 0}, [table, t((2,), [2, -3], "int64")])
        assert out.shape == (2, 2)
        assert list(out.data) == [5, 6, 1, 2]

    def test_reduce_mean_leading_and_trailing(self) -> None:
        """ReduceMean over the first or the last axis, with and without keepdims."""
        x = t((2, 3), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
        (first,) = OPS["ReduceMean"]({"axes": [0], "keepdims": 1}, [x])
        assert first.shape == (1, 3) and list(first.data) == [2.5, 3.5, 4.5]
        (last,) = OPS["ReduceSum"]({"keepdims": 0}, [x, t((1,), [-1], "int64")])
        assert last.shape == (2,) and list(last.data) == [6.0, 15.0]

    def test_reduce_middle_axis_unsupported(self) -> None:
        """Reducing a middle axis is refused as unsupported rather than computed wrongly."""
        with pytest.raises(UnsupportedModel, match="axes"):
            OPS["ReduceSum"]({"axes": [1]}, [t((2, 2, 2), [1.0] * 8)])

    def test_gemm_trans_b_with_bias(self) -> None:
        """Gemm computes A @ B.T + C when transB is set."""
        a = t((1, 2), [1.0, 2.0])
        b = t((3, 2), [1.0, 0.0, 0.0, 1.0, 1.0, 1.0])
        (out,) = OPS["Gemm"]({"transB": 1}, [a, b, t((3,), [0.5, 0.5, 0.5])])
        assert out.shape == (1, 3) and list(out.data) == [1.5, 2.5, 3.5]

    def test_reshape_infers_minus_one(self) -> None:
        """Reshape fills in one -1 dimension and refuses a size mismatch."""
        x = t((2, 3), list(range(6)), "int64")
        (out,) = OPS["Reshape"]({}, [x, t((2,), [3, -1], "int64")])
        assert out.shape == (3, 2)
        with pytest.raises(InputShapeError):
            OPS["Reshape"]({}, [x, t((2,), [4, 2], "int64")])

    def test_cast_float_to_int_truncates(self) -> None:
        """Cast to int64 truncates toward zero, like onnxruntime."""
        (out,) = OPS["Cast"]({"to": 7}, [t((2,), [-1.7, 2.9])])
        assert list(out.data) == [-1, 2] and out.dtype == "int64"


def test_ops_agree_with_numpy() -> None:
    """The pure and numpy backends give the same results on a small Gemm-Softmax chain."""
    np = pytest.importorskip("numpy")
    from shared.onnx_lite.ops_numpy import OPS as NP_OPS

    a = [0.1, -0.2, 0.3, 0.7]
    b = [0.5, -1.0, 2.0, 0.25, 1.5, -0.5, 0.0, 1.0, -2.0, 0.3, 0.9, 0.1]
    (pure,) = OPS["Gemm"]({"transB": 1}, [t((1, 4), a), t((3, 4), b)])
    (pure,) = OPS["Softmax"]({"axis": 1}, [pure])
    arr_a = np.asarray(a, dtype=np.float32).reshape(1, 4)
    arr_b = np.asarray(b, dtype=np.float32).reshape(3, 4)
    (ref,) = NP_OPS["Gemm"]({"transB": 1}, [arr_a, arr_b])
    (ref,) = NP_OPS["Softmax"]({"axis": 1}, [ref])
    assert max(abs(x - float(y)) for x, y in zip(pure.data, ref.reshape(-1), strict=True)) < 1e-6
