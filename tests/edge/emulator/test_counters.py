"""The emulator's rate-limit counters: one worker decides in memory exactly as LMDB and the in-memory runtime
decide, keeps its counts across a restart, and never shares a data directory with another edge process."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

import lmdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eaves.commands import edge as edge_command
from edge.emulator.adapters import LmdbRateLimiter
from edge.emulator.asgi import EdgeASGI
from edge.emulator.counters import ProcessRateLimiter, counter_key
from edge.memory import ManualClock, MemoryRateLimiter
from edge.ratelimit import WindowState
from edge.settings import SettingsError
from shared.kv_lmdb import close_env, open_env
from shared.local_stack import LocalStack

START = 1_750_000_000.0


def stored(path: Path, name: str) -> WindowState | None:
    """What LMDB holds for a counter, read as a third party would."""
    env = open_env(path, map_size=64 << 20, durable=False, writemap=True)
    with env.begin(db=env.open_db(b"ratelimit")) as txn:
        return WindowState.unpack(txn.get(counter_key(name)))


steps = st.lists(st.tuples(st.sampled_from(["acme", "globex", "ü" * 300]),  # the last: a hashed LMDB key
                           st.floats(0, 90, allow_nan=False), st.integers(1, 5), st.sampled_from([1, 10, 60])),
                 min_size=1, max_size=40)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=steps)
def test_one_worker_decides_exactly_as_lmdb_and_the_memory_runtime(tmp_path_factory: Any,
                                                                   steps: list[tuple[str, float, int, int]]) -> None:
    """Any sequence of requests (tenants, pauses, limits, windows that change between tiers): the same
    decisions, remaining counts and reset times from all three limiters, and LMDB ends with the same state."""
    root = tmp_path_factory.mktemp("counters")
    clock = ManualClock(START)

    async def run() -> None:
        process = ProcessRateLimiter(root / "process", clock=clock.now)
        shared = LmdbRateLimiter(root / "shared", clock=clock.now)
        memory = MemoryRateLimiter(clock)
        try:
            for tenant, pause, limit, window_s in steps:
                clock.advance(pause)
                expected = await memory.acquire(tenant, limit, window_s)
                assert await process.acquire(tenant, limit, window_s) == expected
                assert await shared.acquire(tenant, limit, window_s) == expected
        finally:
            process.close()
        for tenant in {s[0] for s in steps}:
            assert stored(root / "process", tenant) == stored(root / "shared", tenant)

    asyncio.run(run())
    close_env(root / "process")
    close_env(root / "shared")


async def test_counts_survive_a_restart(tmp_path: Path) -> None:
    """A clean stop writes every count; the next edge on the directory goes on from there (limit 3: 2 + 2)."""
    clock = ManualClock(START)
    first = ProcessRateLimiter(tmp_path, clock=clock.now)
    assert [(await first.acquire("acme", 3, 60)).allowed for _ in range(2)] == [True, True]
    first.close()
    second = ProcessRateLimiter(tmp_path, clock=clock.now)
    assert [(await second.acquire("acme", 3, 60)).allowed for _ in range(2)] == [True, False]
    second.close()


async def test_changed_counts_reach_lmdb_without_a_stop(tmp_path: Path) -> None:
    """Written back within the interval, in the background, while the edge keeps running."""
    limiter = ProcessRateLimiter(tmp_path, clock=ManualClock(START).now, interval_s=0.01)
    try:
        await limiter.acquire("acme", 5, 60)
        await limiter.acquire("acme", 5, 60)
        assert stored(tmp_path, "acme") is None
        await asyncio.sleep(0.1)
        found = stored(tmp_path, "acme")
        assert found is not None and found.current == 2
    finally:
        limiter.close()


async def test_a_failed_write_back_is_retried_and_decisions_go_on(tmp_path: Path) -> None:
    """LMDB refuses one write-back (a full disk, say): requests are still decided from memory, and the same
    counts reach LMDB with the next write-back instead of being lost."""
    limiter = ProcessRateLimiter(tmp_path, clock=ManualClock(START).now, interval_s=0.01)
    real = limiter._env

    class FailsOnce:
        failures = 1

        def begin(self, **kwargs: Any) -> Any:
            if kwargs.get("write") and FailsOnce.failures:
                FailsOnce.failures -= 1
                raise lmdb.MapFullError("mdb_put: MDB_MAP_FULL")
            return real.begin(**kwargs)

    limiter._env = FailsOnce()
    try:
        assert [(await limiter.acquire("acme", 2, 60)).allowed for _ in range(3)] == [True, True, False]
        await asyncio.sleep(0.2)
        assert FailsOnce.failures == 0
        found = stored(tmp_path, "acme")
        assert found is not None and found.current == 2
    finally:
        limiter._env = real
        limiter.close()


async def test_a_forgotten_counter_is_read_back_not_reset(tmp_path: Path) -> None:
    """Past MAX_REMEMBERED counters the dict is emptied after a write-back: each is then read from LMDB."""
    limiter = ProcessRateLimiter(tmp_path, clock=ManualClock(START).now)
    try:
        assert (await limiter.acquire("acme", 1, 60)).allowed
        limiter.write_back()
        limiter._state.clear()
        assert not (await limiter.acquire("acme", 1, 60)).allowed
    finally:
        limiter.close()


class TestOneOwner:
    def test_a_second_in_memory_owner_is_refused(self, tmp_path: Path) -> None:
        first = ProcessRateLimiter(tmp_path)
        try:
            with pytest.raises(SettingsError, match="another edge process"):
                ProcessRateLimiter(tmp_path)
        finally:
            first.close()
        ProcessRateLimiter(tmp_path).close()  # given up at close: the next edge may take it

    def test_lmdb_workers_and_an_in_memory_owner_exclude_each_other(self, tmp_path: Path) -> None:
        """Either order: a worker counting in LMDB never runs beside one counting in memory."""
        owner = ProcessRateLimiter(tmp_path / "a")
        try:
            with pytest.raises(SettingsError, match="in its own memory"):
                LmdbRateLimiter(tmp_path / "a")
        finally:
            owner.close()
        LmdbRateLimiter(tmp_path / "b")
        LmdbRateLimiter(tmp_path / "b")  # workers of one server share the directory
        with pytest.raises(SettingsError, match="another edge process"):
            ProcessRateLimiter(tmp_path / "b")


async def test_the_emulator_counts_in_memory_only_when_it_is_the_only_worker(tmp_path: Path) -> None:
    tiers = json.dumps({"pro": {"limit": 10, "window_s": 60}})
    one = EdgeASGI(tmp_path / "one", {"EAVES_INTENT": "off", "EAVES_LOG": "off", "EAVES_TIERS": tiers,
                                      "EAVES_EDGE_WORKERS": "1"})
    several = EdgeASGI(tmp_path / "two", {"EAVES_INTENT": "off", "EAVES_LOG": "off", "EAVES_TIERS": tiers,
                                          "EAVES_EDGE_WORKERS": "2"})
    unknown = EdgeASGI(tmp_path / "unknown", {"EAVES_INTENT": "off", "EAVES_LOG": "off", "EAVES_TIERS": tiers})
    try:
        assert isinstance(one._ensure().limiter, ProcessRateLimiter)
        assert isinstance(several._ensure().limiter, LmdbRateLimiter)
        assert isinstance(unknown._ensure().limiter, LmdbRateLimiter)
    finally:
        for app in (one, several, unknown):
            await app.aclose()
    # the clean stop gave the counters up: another one-worker edge may start on the directory
    again = EdgeASGI(tmp_path / "one", {"EAVES_INTENT": "off", "EAVES_LOG": "off", "EAVES_EDGE_WORKERS": "1"})
    again._ensure()
    await again.aclose()
    assert LocalStack(tmp_path / "one").ratelimit_path.is_dir()


@pytest.mark.parametrize("workers", [1, 3])
def test_eaves_edge_tells_its_workers_how_many_they_are(tmp_path: Path, monkeypatch: Any, workers: int) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(edge_command, "serve", lambda app, **kw: seen.update(kw) or 0)
    args = argparse.Namespace(runtime="cpython", data_dir=tmp_path, host="127.0.0.1", edge_port=1,
                              origin="http://127.0.0.1:2", workers=workers, access_log=False)
    assert edge_command.run(args) == 0
    assert seen["workers"] == workers and seen["env"]["EAVES_EDGE_WORKERS"] == str(workers)
