"""Who owns the emulator's rate-limit counters, and the one-process limiter that keeps them in memory.

With several uvicorn workers every request updates its tenant's counter in one LMDB write transaction
(``LmdbRateLimiter``), which LMDB serialises across processes. With one worker (the default of `eaves up`
and `eaves edge`) nobody else updates the counters, so ``ProcessRateLimiter`` keeps them in a dict, as
``edge.memory.MemoryRateLimiter`` does, and LMDB only remembers them: a counter is read from LMDB the
first time this process sees it, and the counters that changed are written back in one transaction at
most ``interval_s`` later and at a clean stop, so a restarted edge continues where the last one stopped.
Decisions are the same function on the same state (``edge.ratelimit.sliding_window``); a hit saves the
write transaction (~7 µs of a ~100 µs hit here, README "Measured"). A SIGKILL loses at most the last
``interval_s`` of counts.

Two processes must never count one tenant in two places, so ownership is a lock on
``<counters>/owner.lock``: the in-memory owner holds it exclusively, every LMDB worker holds it shared.
A second edge on the same data directory is refused at startup with a message saying why, whichever
mode either of them runs in, instead of silently giving every tenant twice its budget.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import fcntl
import hashlib
import os
import time
from pathlib import Path
from typing import Any

import lmdb

from edge.ports import RateDecision
from edge.ratelimit import WindowState, sliding_window
from edge.settings import SettingsError
from shared.kv_lmdb import open_env

DEFAULT_WRITE_BACK_S = 0.2
MAX_REMEMBERED = 10_000  # counters held in memory at once; all are in LMDB after a write-back
LOCK_NAME = "owner.lock"


def counter_key(key: str) -> bytes:
    """The LMDB key for a counter name: longer names than LMDB takes are hashed, never an error."""
    raw = key.encode("utf-8", "surrogatepass")
    if len(raw) > 480:
        raw = b"h/" + hashlib.sha256(raw).hexdigest().encode()
    return raw


def claim(path: Any, *, exclusive: bool) -> int:
    """Hold ``path``'s owner lock for the life of this process (the kernel drops it when the process ends):
    exclusively for one in-memory owner, shared by LMDB workers. Refused with a SettingsError otherwise."""
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise SettingsError(
            f"another edge process is counting requests in {directory} "
            + ("" if exclusive else "in its own memory (it runs with one worker) ")
            + "; stop it, or give this edge its own --data-dir") from None
    return fd


class ProcessRateLimiter:
    """Sliding-window counters for an edge that runs in one process: decided in memory, kept in LMDB."""

    def __init__(self, path: Any, clock: Any = time.time, *, interval_s: float = DEFAULT_WRITE_BACK_S) -> None:
        self._lock_fd = claim(path, exclusive=True)
        self._env = open_env(path, map_size=64 << 20, durable=False, writemap=True)
        self._db = self._env.open_db(b"ratelimit")
        self._clock = clock
        self.interval_s = interval_s
        self._state: dict[str, tuple[bytes, WindowState | None]] = {}  # name -> (LMDB key, state)
        self._dirty: set[str] = set()
        self._timer: asyncio.TimerHandle | None = None
        atexit.register(self.write_back)  # a stop without the lifespan's shutdown still writes the counts

    async def acquire(self, key: str, limit: int, window_s: int) -> RateDecision:
        # Atomic without a lock: the event loop runs one acquire at a time, and no other process counts.
        found = self._state.get(key)
        if found is None:
            found = self._load(key)
        state, decision = sliding_window(found[1], self._clock(), limit, window_s)
        self._state[key] = (found[0], state)
        dirty = self._dirty
        if not dirty:  # the first change since the last write-back: write it back within interval_s
            self._timer = asyncio.get_running_loop().call_later(self.interval_s, self.write_back)
        dirty.add(key)
        return decision

    def _load(self, key: str) -> tuple[bytes, WindowState | None]:
        raw = counter_key(key)
        with self._env.begin(db=self._db) as txn:
            return raw, WindowState.unpack(txn.get(raw))

    def write_back(self) -> None:
        """Write every counter changed since the last write-back, in one transaction."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, set()
        state = self._state
        try:
            with self._env.begin(db=self._db, write=True) as txn:
                for key in dirty:
                    raw, counted = state[key]
                    if counted is not None:
                        txn.put(raw, counted.pack())
        except lmdb.Error:
            # A full or failing disk: decisions go on from memory (they never needed LMDB), and the same
            # counters are written with the next write-back, so the store catches up once it can.
            self._dirty |= dirty
            with contextlib.suppress(RuntimeError):  # no event loop (at exit): nothing more to try
                self._timer = asyncio.get_running_loop().call_later(self.interval_s, self.write_back)
            return
        if len(state) > MAX_REMEMBERED:
            state.clear()  # every counter is in LMDB now: the next request of each reads it back

    def close(self) -> None:
        """A clean stop: every count written, the ownership given up."""
        self.write_back()
        atexit.unregister(self.write_back)
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1
