"""The pure-Python tensor: a shape, a dtype name and the values in row-major order.

Values are Python ints and floats (float64 arithmetic): integer data of int8/int64 range is exact in both,
so a ``Cast`` from integers to float needs no conversion pass, which matters at 10,000 values a query.
"""

from __future__ import annotations

import array
import struct
import sys
from collections.abc import Sequence
from typing import Any

from shared.onnx_lite.errors import MalformedModel, UnsupportedModel
from shared.onnx_lite.proto import DTYPES, TensorProto

FLOAT_DTYPES = frozenset({"float16", "float32", "float64"})
_ARRAY_CODES = {"int8": "b", "uint8": "B", "int16": "h", "uint16": "H", "int32": "i", "uint32": "I",
                "int64": "q", "uint64": "Q", "float32": "f", "float64": "d"}


class PureTensor:
    __slots__ = ("_columns", "_rows", "data", "dtype", "shape")

    def __init__(self, shape: Sequence[int], dtype: str, data: Sequence[Any]) -> None:
        self.shape = tuple(shape)
        self.dtype = dtype
        self.data = data
        self._columns: list[list[Any]] | None = None
        self._rows: list[list[Any]] | None = None

    @property
    def size(self) -> int:
        return size_of(self.shape)

    def tolist(self) -> Any:
        """Nested lists, like ``numpy.ndarray.tolist``."""
        values = list(self.data)
        for dim in reversed(self.shape[1:]):
            values = [values[i:i + dim] for i in range(0, len(values), dim)]
        return values[0] if not self.shape else values

    def columns(self) -> list[list[Any]]:
        """The columns of a 2-D tensor, computed once: a weight matrix is read column-wise every query."""
        if self._columns is None:
            cols = self.shape[1]
            self._columns = [list(self.data[j::cols]) for j in range(cols)]
        return self._columns

    def rows(self) -> list[list[Any]]:
        """The rows of a 2-D tensor, computed once (a transposed weight matrix's columns)."""
        if self._rows is None:
            rows, cols = self.shape
            self._rows = [list(self.data[r * cols:(r + 1) * cols]) for r in range(rows)]
        return self._rows

    def __repr__(self) -> str:
        return f"PureTensor(shape={self.shape}, dtype={self.dtype})"


def size_of(shape: Sequence[int]) -> int:
    total = 1
    for dim in shape:
        total *= dim
    return total


def tensor_values(proto: TensorProto) -> tuple[str, Sequence[Any]]:
    """Decode a TensorProto's values into a flat sequence, checking the count against its dims."""
    name, code, itemsize = DTYPES[proto.data_type]
    if proto.external:
        raise UnsupportedModel(f"tensor {proto.name!r} stores its data in an external file; "
                               "save the model with all tensors inside it")
    count = size_of(proto.dims)
    values: Sequence[Any]
    if proto.raw_data:
        if len(proto.raw_data) != count * itemsize:
            raise MalformedModel(f"tensor {proto.name!r} has {len(proto.raw_data)} bytes of data; "
                                 f"dims {proto.dims} of {name} need {count * itemsize}")
        if name in _ARRAY_CODES:
            arr = array.array(_ARRAY_CODES[name])
            if arr.itemsize != itemsize:
                values = list(struct.unpack(f"<{count}{code}", proto.raw_data))
            else:
                arr.frombytes(proto.raw_data)
                if sys.byteorder == "big":
                    arr.byteswap()  # ONNX raw_data is little-endian whatever the host
                values = arr
        else:
            values = list(struct.unpack(f"<{count}{code}", proto.raw_data))
    elif name == "float32":
        values = proto.float_data
    elif name == "float64":
        values = proto.double_data
    elif name == "int64":
        values = proto.int64_data
    elif name == "float16":
        # float16 values travel as their bit patterns in int32_data.
        values = list(struct.unpack(f"<{len(proto.int32_data)}e",
                                    struct.pack(f"<{len(proto.int32_data)}H", *proto.int32_data)))
    else:
        values = proto.int32_data
    if len(values) != count:
        raise MalformedModel(f"tensor {proto.name!r} has {len(values)} values; "
                             f"dims {proto.dims} need {count}")
    return name, values
