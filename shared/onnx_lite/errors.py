"""Errors the ONNX interpreter raises, each naming what is wrong so a user can act on it.

    OnnxLiteError
    ├── MalformedModel        the bytes are not a well-formed ONNX ModelProto (truncated, corrupt, not ONNX)
    ├── UnsupportedModel      well-formed, but uses something this interpreter does not implement
    │   └── UnsupportedOperator   an op type (or domain) with no implementation here
    └── InputShapeError       a caller's input has the wrong name, type or shape for the graph
"""

from __future__ import annotations


class OnnxLiteError(Exception):
    """Base class: anything that goes wrong reading or running a model."""


class MalformedModel(OnnxLiteError):
    """The file is not a valid ONNX model."""


class UnsupportedModel(OnnxLiteError):
    """The model is valid ONNX but needs a feature this interpreter lacks."""


class UnsupportedOperator(UnsupportedModel):
    """The graph uses an operator this interpreter does not implement."""


class InputShapeError(OnnxLiteError):
    """An input given to ``run`` does not match what the graph declares."""
