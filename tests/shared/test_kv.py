"""The KV contract, run against every implementation: Workers KV's limits, expiry, listing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.memory import ManualClock, MemoryKV
from shared.kv import KVLimitError, KVStorageFull


@pytest.fixture(params=["memory", "lmdb"])
def kv_and_clock(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Any, ManualClock]]:
    clock = ManualClock()
    if request.param == "memory":
        yield MemoryKV(clock), clock
        return
    pytest.importorskip("lmdb")
    from edge.emulator.adapters import AsyncLmdbKV
    from shared.kv_lmdb import LmdbKV, close_env

    yield AsyncLmdbKV(LmdbKV(tmp_path / "kv", clock=clock.now)), clock
    close_env(tmp_path / "kv")


class TestLimits:
    @pytest.mark.parametrize("key", ["", ".", "..", "k" * 513, "é" * 257])
    async def test_bad_keys_refused(self, kv_and_clock: tuple[Any, ManualClock], key: str) -> None:
        """Empty, dot and over-512-byte keys (counted in UTF-8 bytes) are refused as Workers KV does."""
        kv, _ = kv_and_clock
        with pytest.raises(KVLimitError):
            await kv.put(key, b"v")

    async def test_512_byte_key_allowed(self, kv_and_clock: tuple[Any, ManualClock]) -> None:
        """A key of exactly 512 bytes is the largest allowed."""
        kv, _ = kv_and_clock
        await kv.put("k" * 512, b"v")
        assert (await kv.get("k" * 512)).value == b"v"

    async def test_value_over_25_mib_refused(self, kv_and_clock: tuple[Any, ManualClock]) -> None:
        """Values over 25 MiB are refused and nothing is stored."""
        kv, _ = kv_and_clock
        with pytest.raises(KVLimitError, match="value"):
            await kv.put("big", b"x" * (25 * 1024 * 1024 + 1))
        assert await kv.get("big") is None

    async def test_metadata_over_1024_bytes_refused(self, kv_and_clock: tuple[Any, ManualClock]) -> None:
        """Metadata over 1024 serialized bytes, or not JSON, is refused."""
        kv, _ = kv_and_clock
        with pytest.raises(KVLimitError, match="metadata"):
            await kv.put("m", b"v", metadata={"x": "y" * 1100})
        with pytest.raises(KVLimitError, match="JSON"):
            await kv.put("m", b"v", metadata={"x": object()})

    async def test_ttl_under_60_refused(self, kv_and_clock: tuple[Any, ManualClock]) -> None:
        """expirationTtl under 60 seconds is refused, as in production."""
        kv, _ = kv_and_clock
        with pytest.raises(KVLimitError, match="60"):
            await kv.put("t", b"v", expiration_ttl=59)


class TestBehaviour:
    async def test_round_trip_with_metadata(self, kv_and_clock: tuple[Any, ManualClock]) -> None:
        """A value comes back byte for byte with its metadata."""
        kv, _ = kv_and_clock
        await kv.put("a", b"\x00\xffdata", metadata={"c": 1.5})
        entry = await kv.get("a")
        assert entry.value == b"\x00\xffdata" and entry.metadata == {"c": 1.5}

    async def test_expiry(self, kv_and_clock: tuple[Any, ManualClock]) -> None:
        """An entry is there until its TTL runs out, then gone."""
        kv, clock = kv_and_clock
        await kv.put("e", b"v", expiration_ttl=60)
        clock.advance(59)
        assert await kv.get("e") is not None
        clock.advance(2)
        assert await kv.get("e") is None

    async def test_delete(self, kv_and_clock: tuple[Any, ManualClock]) -> None:
        """Deleted keys read as absent; deleting twice is fine."""
        kv, _ = kv_and_clock
        await kv.put("d", b"v")
        await kv.delete("d")
        await kv.delete("d")
        assert await kv.get("d") is None

    async def test_list_by_prefix_with_cursor(self, kv_and_clock: tuple[Any, ManualClock]) -> None:
        """Listing is sorted, prefix-bounded and pages with a cursor until complete."""
        kv, _ = kv_and_clock
        for i in range(5):
            await kv.put(f"p/{i}", b"v")
        await kv.put("q/0", b"v")
        page = await kv.list(prefix="p/", limit=2)
        names = [k.name for k in page.keys]
        while not page.list_complete:
            page = await kv.list(prefix="p/", limit=2, cursor=page.cursor)
            names += [k.name for k in page.keys]
        assert names == [f"p/{i}" for i in range(5)]

    async def test_list_limit_bounds(self, kv_and_clock: tuple[Any, ManualClock]) -> None:
        """A list limit outside 1..1000 is refused."""
        kv, _ = kv_and_clock
        with pytest.raises(KVLimitError):
            await kv.list(limit=1001)


def test_lmdb_full_map_writes_nothing(tmp_path: Path) -> None:
    """When the LMDB map is full the put fails with KVStorageFull and the store stays readable."""
    pytest.importorskip("lmdb")
    from shared.kv_lmdb import LmdbKV, close_env

    store = LmdbKV(tmp_path / "small", map_size=256 * 1024)
    store.put("keep", b"v")
    with pytest.raises(KVStorageFull, match="nothing was written"):
        for i in range(100):
            store.put(f"fill/{i}", b"x" * 16_000)
    assert store.get("keep") == (b"v", None)
    close_env(tmp_path / "small")


def test_lmdb_metadata_read_back_is_the_callers_own(tmp_path: Path) -> None:
    """Reads of the same entry (whose parsed metadata the store remembers) each get their own equal copy:
    changing one changes neither the store nor the next read."""
    pytest.importorskip("lmdb")
    from shared.kv_lmdb import LmdbKV

    store = LmdbKV(tmp_path / "kv")
    store.put("ans/a", b"x", metadata={"c": 1.0, "i": "oos"})
    store.put("ans/b", b"y", metadata={"c": 1.0, "i": "oos"})  # the same metadata bytes, another entry
    first = store.get("ans/a")
    assert first is not None and first[1] == {"c": 1.0, "i": "oos"}
    assert first[1] is not None
    first[1]["i"] = "changed"
    again, other = store.get("ans/a"), store.get("ans/b")
    assert again is not None and again[1] == {"c": 1.0, "i": "oos"}
    assert other is not None and other == (b"y", {"c": 1.0, "i": "oos"})
