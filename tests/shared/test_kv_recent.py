"""The LMDB KV's remembered reads (shared.kv_lmdb.LmdbKV.get): a read is reused only while LMDB's snapshot id
says nothing was committed since, so it is never older than what LMDB holds; expiry is still checked each time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.memory import ManualClock

lmdb = pytest.importorskip("lmdb")

from shared.kv_lmdb import LmdbKV, close_env  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def test_an_unchanged_entry_is_read_once() -> None:
    """Two reads with no commit between them hand out the same value object (the decode is not repeated),
    each with its own metadata copy."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        store = LmdbKV(Path(tmp) / "kv")
        store.put("ans/a", b"answer", metadata={"c": 1.0})
        first, second = store.get("ans/a"), store.get("ans/a")
        assert first is not None and second is not None
        assert first[0] is second[0]
        assert first[1] == second[1] == {"c": 1.0} and first[1] is not second[1]
        close_env(Path(tmp) / "kv")


def test_expiry_is_checked_on_every_read(tmp_path: Path) -> None:
    clock = ManualClock()
    store = LmdbKV(tmp_path / "kv", clock=clock.now)
    store.put("ans/a", b"answer", expiration_ttl=60)
    assert store.get("ans/a") is not None
    clock.advance(59.9)
    assert store.get("ans/a") is not None
    clock.advance(0.2)
    assert store.get("ans/a") is None  # nothing was committed, but the remembered entry has expired


# Operations from "another writer" (a second store on the same directory, as the origin is) between reads.
_OPS = st.lists(st.tuples(st.sampled_from(["put", "put_meta", "delete", "get", "other_key", "tick"]),
                          st.sampled_from(["ans/a", "ans/b"]), st.binary(max_size=8)), max_size=30)


@settings(max_examples=60, deadline=None)
@given(ops=_OPS)
def test_reads_always_match_what_lmdb_holds(ops: list[tuple[str, str, bytes]]) -> None:
    """Whatever another writer does between reads (overwrite, new metadata, delete, writes to other keys), a
    read returns exactly what a store that remembers nothing returns."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        clock = ManualClock()
        reader = LmdbKV(Path(tmp) / "kv", clock=clock.now)
        writer = LmdbKV(Path(tmp) / "kv", clock=clock.now)
        fresh: Any = lambda key: LmdbKV(Path(tmp) / "kv", clock=clock.now).get(key)  # noqa: E731
        for op, key, value in ops:
            if op == "put":
                writer.put(key, value, expiration_ttl=60)
            elif op == "put_meta":
                writer.put(key, value, metadata={"v": value.hex()})
            elif op == "delete":
                writer.delete(key)
            elif op == "other_key":
                writer.put("other/" + key, value)
            elif op == "tick":
                clock.advance(30)
            assert reader.get(key) == fresh(key)
        close_env(Path(tmp) / "kv")


def test_a_write_from_another_process_is_seen_at_the_next_read(tmp_path: Path) -> None:
    """The origin writes into the same LMDB from its own process: an overwrite and a delete there are what the
    edge's next read returns, though it remembered the entry."""
    store = LmdbKV(tmp_path / "kv")
    store.put("ans/a", b"old", metadata={"c": 1.0})
    assert store.get("ans/a") == (b"old", {"c": 1.0})
    assert store.get("ans/a") == (b"old", {"c": 1.0})

    def in_other_process(code: str) -> None:
        subprocess.run([sys.executable, "-c", "from shared.kv_lmdb import LmdbKV; "
                        f"s = LmdbKV({str(tmp_path / 'kv')!r}); {code}"], cwd=REPO, check=True, timeout=60)

    in_other_process("s.put('ans/a', b'new', metadata={'c': 2.0})")
    assert store.get("ans/a") == (b"new", {"c": 2.0})
    in_other_process("s.delete('ans/a')")
    assert store.get("ans/a") is None
