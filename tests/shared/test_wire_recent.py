"""CachedAnswer.from_kv's remembered decodes (shared.wire): never an answer other than decoding afresh gives.
(Apart from tests/shared/test_wire.py, which also runs inside Pyodide, where hypothesis is not installed.)"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shared.wire import CachedAnswer


@given(created=st.floats(0, 1e9), fresh=st.floats(0, 1e9), stale=st.floats(0, 1e9), keep=st.floats(0, 1e9),
       intent=st.text(max_size=10), changes=st.lists(st.tuples(st.sampled_from("cfski"), st.floats(0, 1e9)),
                                                      max_size=4))
def test_a_remembered_decode_never_hides_changed_metadata(created: float, fresh: float, stale: float, keep: float,
                                                          intent: str, changes: list[tuple[str, float]]) -> None:
    """Reading the same body object with other metadata (or a caller's dict changed in place) decodes that
    metadata: the answer is always what decoding afresh gives."""
    body = b'{"same": "body"}'
    meta: dict[str, object] = {"c": created, "f": fresh, "s": stale, "k": keep, "i": intent}
    CachedAnswer.from_kv(body, meta)
    for field, value in changes:
        meta[field] = value if field != "i" else str(value)  # in place: the remembered copy must not follow
        expected = CachedAnswer(body, float(meta["c"]), float(meta["f"]), str(meta["i"]),  # type: ignore[arg-type]
                                float(meta["s"]), float(meta["k"]))  # type: ignore[arg-type]
        assert CachedAnswer.from_kv(body, meta) == expected
