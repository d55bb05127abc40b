"""Each signed edge→origin request is served once: its nonce is remembered until its signature expires.

A signature is good for ``signing.DEFAULT_SKEW_S`` either side of its timestamp, so a nonce needs
keeping only until then; after that the timestamp check refuses the request on its own. Several origin
worker processes share the guard through LMDB (a nonce is checked and recorded in one write
transaction, which LMDB serialises across processes); the in-memory guard serves one process (tests).
An origin spread over several machines needs a shared store instead (see README, "Security model").
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from shared.kv_lmdb import open_env, scan_expired

_EXPIRY = struct.Struct("<d")
SWEEP_EVERY = 256  # inserts between two bounded sweeps
SWEEP_BATCH = 256  # expired nonces removed per sweep, at most


def _expiry_of(record: bytes) -> float:
    return float(_EXPIRY.unpack(record)[0])


class ReplayGuard(Protocol):
    def first_use(self, nonce: str, expires_at: float) -> bool:
        """Record ``nonce`` until ``expires_at``; False when it was already recorded and unexpired."""


class MemoryReplayGuard:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._seen: dict[str, float] = {}

    def first_use(self, nonce: str, expires_at: float) -> bool:
        now = self._clock()
        found = self._seen.get(nonce)
        if found is not None and found > now:
            return False
        self._seen[nonce] = expires_at
        if len(self._seen) % SWEEP_EVERY == 0:
            for doomed in [n for n, until in self._seen.items() if until <= now][:SWEEP_BATCH]:
                del self._seen[doomed]
        return True

    def __len__(self) -> int:
        return len(self._seen)


class LmdbReplayGuard:
    def __init__(self, path: str | os.PathLike[str], clock: Callable[[], float] = time.time) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)
        # Not fsynced: a power cut may forget the last nonces, so a request recorded just before it could
        # be served once more within its window; it would rewrite the same answer, paid once more.
        self._env = open_env(path, map_size=256 << 20, durable=False, writemap=True)
        self._db = self._env.open_db(b"nonces")
        self._clock = clock
        self._inserts = 0
        self._sweep_from = b""  # each sweep goes on where the last stopped, so all nonces get their turn

    def first_use(self, nonce: str, expires_at: float) -> bool:
        now = self._clock()
        key = nonce.encode("ascii")
        with self._env.begin(db=self._db, write=True) as txn:
            found = txn.get(key)
            if found is not None and _EXPIRY.unpack(found)[0] > now:
                return False
            txn.put(key, _EXPIRY.pack(expires_at))
            self._inserts += 1
            if self._inserts % SWEEP_EVERY == 0:
                self._sweep(txn, now)
        return True

    def _sweep(self, txn: object, now: float) -> None:
        """Delete up to SWEEP_BATCH expired nonces, reading at most 4 x that many: bounded work per call."""
        doomed, self._sweep_from = scan_expired(txn.cursor(), self._sweep_from, now,  # type: ignore[attr-defined]
                                                _expiry_of, batch=SWEEP_BATCH, max_scan=4 * SWEEP_BATCH)
        for key in doomed:
            txn.delete(key)  # type: ignore[attr-defined]

    def __len__(self) -> int:
        with self._env.begin(db=self._db) as txn:
            return int(txn.stat(self._db)["entries"])
