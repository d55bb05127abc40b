"""Header values to the origin, for any text (hypothesis: CPython only, the Pyodide tier has no hypothesis)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shared.wire import from_header, to_header


@given(st.text())
def test_any_text_survives_the_trip_to_the_origin(text: str) -> None:
    """Tenant names and request ids of any characters go out as printable ASCII without edge whitespace
    (what HTTP clients accept and parsers keep) and come back unchanged."""
    value = to_header(text)
    assert all(0x21 <= ord(c) <= 0x7E for c in value)
    assert from_header(value) == text
