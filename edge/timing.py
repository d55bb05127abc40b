"""Server-Timing (W3C): where each request's time went, per segment, in milliseconds."""

from __future__ import annotations

from collections.abc import Callable


class Timing:
    __slots__ = ("_clock", "_last", "_parts")

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._last = clock()
        self._parts: list[tuple[str, float]] = []

    def mark(self, segment: str) -> None:
        """Close the segment that ran since the previous mark."""
        now = self._clock()
        self._parts.append((segment, now - self._last))
        self._last = now

    def skip(self) -> None:
        """Start the next segment now, leaving out what ran since the last mark."""
        self._last = self._clock()

    def header(self) -> str:
        return ", ".join(f"{name};dur={seconds * 1000:.3f}" for name, seconds in self._parts)
