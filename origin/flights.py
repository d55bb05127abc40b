"""Coalescing: one generation in flight per answer, shared by every request that asks for it.

The first request for a key starts a ``Flight`` (the leader); identical requests that arrive while it
runs join it (followers). A flight keeps every piece produced so far, so a follower that joins late
replays what it missed and then follows live; a non-streaming follower just awaits the end. The
generation runs in its own task, so a client that hangs up never cancels it for the others, and the
answer is written back once.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from origin.generators.base import GenerationError, Piece


@dataclass
class Flight:
    key: str
    completion_id: str
    created: int
    model: str
    pieces: list[Piece] = field(default_factory=list)
    followers: int = 0
    error: GenerationError | None = None
    body: bytes = b""  # the final non-streamed completion, once done
    usage: dict[str, Any] = field(default_factory=dict)
    writeback: str = "pending"
    finish_reason: str = "stop"  # why the model stopped; only "stop" answers are written back
    started: float = field(default_factory=time.perf_counter)
    first_piece_at: float | None = None
    finished_at: float | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _done: bool = False

    def add(self, piece: Piece) -> None:
        if self.first_piece_at is None and piece.text:
            self.first_piece_at = time.perf_counter()
        self.pieces.append(piece)
        self._wake()

    def finish(self, *, error: GenerationError | None = None) -> None:
        self.error = error
        self.finished_at = time.perf_counter()
        self._done = True
        self._wake()

    @property
    def done(self) -> bool:
        return self._done

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def follow(self) -> AsyncIterator[Piece]:
        """Every piece from the first, live; raises the flight's GenerationError if it failed."""
        index = 0
        while True:
            changed = self._changed
            while index < len(self.pieces):
                yield self.pieces[index]
                index += 1
            if self._done:
                if self.error is not None:
                    raise self.error
                return
            await changed.wait()

    async def wait(self) -> None:
        """Until the flight is over; raises its GenerationError if it failed."""
        while not self._done:
            await self._changed.wait()
        if self.error is not None:
            raise self.error


Runner = Callable[[Flight], Awaitable[None]]


class Flights:
    """The in-flight generations of this process, by key."""

    def __init__(self) -> None:
        self._flights: dict[str, Flight] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.started = 0
        self.joined = 0

    def __len__(self) -> int:
        return len(self._flights)

    def join(self, key: str, model: str, run: Runner, completion_id: str) -> tuple[Flight, bool]:
        """The flight for ``key`` and whether this caller leads it (started it with ``run``)."""
        flight = self._flights.get(key)
        if flight is not None:
            flight.followers += 1
            self.joined += 1
            return flight, False
        flight = Flight(key, completion_id, int(time.time()), model)
        self._flights[key] = flight
        self.started += 1
        task = asyncio.ensure_future(self._run(flight, run))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return flight, True

    async def _run(self, flight: Flight, run: Runner) -> None:
        try:
            await run(flight)
        except GenerationError as exc:
            flight.finish(error=exc)
        except Exception as exc:  # never leave followers waiting on a flight that died
            flight.finish(error=GenerationError(f"generation crashed ({type(exc).__name__}: {exc})"))
        else:
            if not flight.done:
                flight.finish()
        finally:
            if self._flights.get(flight.key) is flight:
                del self._flights[flight.key]

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


def request_key(tenant: str, user: str, payload: dict[str, Any]) -> str:
    """The coalescing key of an uncacheable request: the tenant, the end user (the origin may personalise
    for them) and the whole request except how it is delivered, so two askers share a generation only
    when the origin would have given both the same answer."""
    fields = {k: v for k, v in payload.items() if k not in ("stream", "stream_options")}
    raw = json.dumps([tenant, user, fields], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "req/" + hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()
