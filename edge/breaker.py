"""A circuit breaker around the origin: stop sending work to an origin that keeps failing.

    closed ──(N failures in a row)──► open ──(cooldown)──► half-open ──(probe ok)──► closed
                                        ▲                       │
                                        └────(probe fails)──────┘

While open, requests go straight to the fallback tiers: the client gets an answer (or a clear 503)
at once instead of waiting out a timeout. In half-open exactly one request probes the origin.
State is per isolate/process: each edge instance learns about the origin on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

State = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    def __init__(self, clock: Callable[[], float], *, failure_threshold: int = 5, cooldown_s: float = 10.0,
                 probe_timeout_s: float = 60.0) -> None:
        self._clock = clock
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self._probe_timeout_s = probe_timeout_s
        self._failures = 0
        self._opened_at = 0.0
        self._probe_started: float | None = None
        self._state: State = "closed"
        self.transitions = 0

    @property
    def state(self) -> State:
        if self._state == "open" and self._clock() - self._opened_at >= self.cooldown_s:
            return "half_open"
        return self._state

    def retry_after_s(self) -> float:
        """Seconds until the breaker will let a probe through (0 when closed)."""
        if self._state == "closed":
            return 0.0
        return max(0.0, self.cooldown_s - (self._clock() - self._opened_at))

    def allow(self) -> bool:
        """May this request go to the origin? In half-open, only the one probe may."""
        state = self.state
        if state == "closed":
            return True
        if state == "open":
            return False
        now = self._clock()
        if self._probe_started is not None and now - self._probe_started < self._probe_timeout_s:
            return False  # a probe is already out
        self._state = "half_open"
        self._probe_started = now
        return True

    def record_success(self) -> None:
        if self._state != "closed":
            self.transitions += 1
        self._state = "closed"
        self._failures = 0
        self._probe_started = None

    def record_neither(self) -> None:
        """The request allowed through never reached the origin (it could not be built or sent): no
        verdict on the origin, and a probe slot it held is free again at once."""
        if self._state == "half_open":
            self._probe_started = None

    def record_failure(self) -> None:
        self._failures += 1
        if self._state == "half_open" or self._failures >= self.failure_threshold:
            if self._state != "open":
                self.transitions += 1
            self._state = "open"
            self._opened_at = self._clock()
            self._probe_started = None
