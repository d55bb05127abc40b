"""Server-Timing (W3C): where each request's time went, per segment, in milliseconds.

One ``Timing`` lives for one request; observers (metrics, logs) read it after the response is built,
which is also why it carries the tenant and the route: it is the one per-request object every step already
sees, and what one observer would look up another need not look up again.
"""

from __future__ import annotations

from collections.abc import Callable


class Timing:
    __slots__ = ("_clock", "_header", "_last", "_parts", "route", "started", "stopped", "tenant")

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._last = self.started = clock()
        self._parts: list[tuple[str, float]] = []
        self._header = ""  # header(), kept until the next mark: the response and the log line both use it
        self.tenant = ""  # set once the caller is authenticated; logs and metrics only, never a header
        self.route: str | None = None  # the response's x-edge-route, once it is built (None: look there)
        self.stopped: float | None = None  # when the response was ready (stop()); elapsed() ends there

    def mark(self, segment: str) -> None:
        """Close the segment that ran since the previous mark."""
        now = self._clock()
        self._parts.append((segment, now - self._last))
        self._last = now
        self._header = ""

    def skip(self) -> None:
        """Start the next segment now, leaving out what ran since the last mark."""
        self._last = self._clock()

    @property
    def parts(self) -> list[tuple[str, float]]:
        """(segment, seconds) in the order they ran."""
        return self._parts

    def stop(self) -> None:
        """The response is ready: every observer's ``elapsed()`` is now this same duration."""
        self.stopped = self._clock()

    def elapsed(self) -> float:
        """Seconds from the request's start to ``stop()`` (to now, before it)."""
        return (self._clock() if self.stopped is None else self.stopped) - self.started

    def header(self) -> str:
        """``auth;dur=0.012, kv;dur=0.020``: formatted once per request (a float costs ~0.4 µs to format)."""
        if not self._header and self._parts:
            self._header = ", ".join([f"{name};dur={seconds * 1000:.3f}" for name, seconds in self._parts])
        return self._header
