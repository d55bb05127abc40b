"""The local LMDB KV reclaims expired entries as it is written: the store stops growing."""

from __future__ import annotations

from pathlib import Path

import pytest

lmdb = pytest.importorskip("lmdb")

from shared.kv_lmdb import SWEEP_EVERY, LmdbKV  # noqa: E402 -- after the skip: Pyodide has no lmdb


def records(store: LmdbKV) -> int:
    with store._env.begin(db=store._db) as txn:
        return int(txn.stat(store._db)["entries"])


def test_expired_entries_are_reclaimed_while_writing(tmp_path: Path) -> None:
    """Writing 60-second entries at 2/s for simulated minutes keeps the record count near what is live."""
    now = [1_000_000.0]
    store = LmdbKV(tmp_path, clock=lambda: now[0])
    sizes = []
    for i in range(1_200):
        now[0] += 0.5
        store.put(f"ans/t/{i:08d}", b"x" * 100, expiration_ttl=60)
        if i % 200 == 199:
            sizes.append(records(store))
    assert max(sizes) < 120 + 2 * SWEEP_EVERY  # 120 live plus what the next sweep has not reached yet
    assert sizes[-1] <= sizes[1] + SWEEP_EVERY  # flat, not growing with the number of writes


def test_entries_without_expiry_and_live_ones_are_kept(tmp_path: Path) -> None:
    """Sweeping never removes an entry that has not expired."""
    now = [1_000_000.0]
    store = LmdbKV(tmp_path, clock=lambda: now[0])
    store.put("key/forever", b"k")
    for i in range(3 * SWEEP_EVERY):
        store.put(f"ans/t/{i}", b"v", expiration_ttl=3600)
    now[0] += 60
    for i in range(3 * SWEEP_EVERY):
        store.put(f"ans/u/{i}", b"v", expiration_ttl=60)
    assert store.get("key/forever") is not None
    assert records(store) == 1 + 6 * SWEEP_EVERY


def test_a_bounded_sweep_reads_a_bounded_number_of_records(tmp_path: Path) -> None:
    """max_scan caps the work of one sweep and the next one goes on from where it stopped."""
    now = [1_000_000.0]
    store = LmdbKV(tmp_path, clock=lambda: now[0])
    for i in range(50):
        store.put(f"a/{i:03d}", b"v", expiration_ttl=60)
    now[0] += 120
    assert store.sweep(batch=100, max_scan=20) == 20
    assert store.sweep(batch=100, max_scan=20) == 20
    assert store.sweep(batch=100, max_scan=20) == 10


def test_a_full_store_reclaims_expired_entries_before_refusing(tmp_path: Path) -> None:
    """When the map is full of expired entries, the put reclaims them and succeeds."""
    now = [1_000_000.0]
    store = LmdbKV(tmp_path, map_size=256 * 1024, clock=lambda: now[0])
    from shared.kv import KVStorageFull

    written = 0
    try:
        for i in range(10_000):
            store.put(f"ans/t/{i:05d}", b"x" * 2000, expiration_ttl=60)
            written += 1
    except KVStorageFull:
        pass
    assert 0 < written < 10_000
    now[0] += 120  # everything written has expired
    store.put("ans/t/new", b"x" * 2000, expiration_ttl=60)
    assert store.get("ans/t/new") is not None


def test_a_failing_sweep_never_turns_into_a_raw_lmdb_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sweep that fails (a full map can refuse its delete transaction): the periodic one after a written
    entry is not the put's failure, and a full store is still the clean KVStorageFull."""
    from shared.kv import KVStorageFull

    store = LmdbKV(tmp_path, map_size=256 * 1024)

    def failing_sweep(*args: object, **kwargs: object) -> int:
        raise lmdb.MapFullError("full")

    monkeypatch.setattr(store, "sweep", failing_sweep)
    for i in range(SWEEP_EVERY):
        store.put(f"ans/t/{i:05d}", b"x", expiration_ttl=60)  # the last one triggers the periodic sweep
    assert store.get(f"ans/t/{SWEEP_EVERY - 1:05d}") is not None
    with pytest.raises(KVStorageFull):
        for i in range(10_000):
            store.put(f"ans/big/{i:05d}", b"x" * 2000, expiration_ttl=60)
