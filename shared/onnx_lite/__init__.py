"""A small ONNX interpreter: reads ``.onnx`` files without the onnx or protobuf packages and evaluates
the operators eaves' models use, in pure Python, with numpy when it is present (never required)."""

from shared.onnx_lite.errors import (
    InputShapeError,
    MalformedModel,
    OnnxLiteError,
    UnsupportedModel,
    UnsupportedOperator,
)
from shared.onnx_lite.interpreter import Model, numpy_available

__all__ = [
    "InputShapeError",
    "MalformedModel",
    "Model",
    "OnnxLiteError",
    "UnsupportedModel",
    "UnsupportedOperator",
    "numpy_available",
]
