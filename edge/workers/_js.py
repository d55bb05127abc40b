"""Conversions at the JS boundary, shared by the Workers adapters."""

from __future__ import annotations

from typing import Any

import js  # type: ignore[import-not-found]
from pyodide.ffi import to_js  # type: ignore[import-not-found]

try:
    from pyodide.ffi import jsnull
except ImportError:  # Pyodide before 0.28 turns JS null into None
    jsnull = None


def js_object(values: dict[str, Any]) -> Any:
    """A plain JS object (not a Map, to_js's default): bindings and fetch read options as objects."""
    return to_js(values, dict_converter=js.Object.fromEntries)


def is_null(value: Any) -> bool:
    return value is None or value is jsnull
