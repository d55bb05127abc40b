"""The edge's metrics: counted in plain dicts on the request path, exported elsewhere.

Recording one request costs a few dict updates (well under a microsecond each), because every
microsecond on the cache-hit path counts; ``prometheus_client``'s multiprocess values cost ~2 µs per
increment and ~4 µs per histogram observation (measured here), which would be ~10 µs per hit.
Exporters read ``snapshot()``: the emulator merges one snapshot file per worker process into
Prometheus's text format (``edge.emulator.metrics``).

Fallbacks are counted from the response itself (its ``x-edge-fallback-reason`` header), and a circuit
breaker's state is read when a snapshot is taken, so nothing on the request path has to remember to report
them::

    METRICS.watch_breaker("origin", lambda: edge.breaker.state)   # closed | open | half_open

New route names (``x-edge-route``) and states simply appear as new label values.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from typing import Any

from edge.http import EdgeRequest, EdgeResponse
from edge.timing import Timing
from shared import wire

# Seconds. Hits take ~0.1-1 ms end to end, misses ms to seconds, streams up to minutes.
DURATION_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                    1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Routes on which the origin was not called although, without the edge, it would have been.
SAVED_ROUTES = frozenset({"hit", "stale", "edge", "blocked"})
CACHE_ROUTES = frozenset({"hit", "stale", "miss"})
FALLBACK_REASON_HEADER = wire.FALLBACK_REASON_HEADER
# Routes whose responses may carry a fallback reason (stale-if-error is served as "stale"): a hit never does.
_FALLBACK_ROUTES = frozenset({"fallback", "stale"})
_STATUS_ROUTES = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "not_found", 429: "rate_limited"}


def route_label(route_header: str | None, status: int) -> str:
    """How a request was served: the ``x-edge-route`` value, or a name for the refusals that carry none."""
    if route_header:
        return route_header
    if status < 400:
        return "other"
    return _STATUS_ROUTES.get(status) or ("error" if status >= 500 else "rejected")


class EdgeMetrics:
    """One process's counters. Not thread-safe by design: the edge runs on one event loop per process."""

    def __init__(self) -> None:
        self._requests: dict[tuple[str, str], int] = {}  # (route, status) -> count
        # route -> [bucket counts..., +Inf count, sum of seconds]
        self._durations: dict[str, list[float]] = {}
        self._segments: dict[str, list[float]] = {}  # segment -> [count, sum of seconds]
        self._fallbacks: dict[str, int] = {}
        self.breakers: dict[str, str] = {}  # breaker name -> last reported state
        self._breaker_sources: dict[str, Callable[[], str]] = {}  # breaker name -> reads its state now
        # Requests observed but not yet counted: (route, status, seconds, segments, fallback reason).
        self._pending: list[tuple[str, int, float, list[tuple[str, float]], str | None]] = []
        self.generation = 0  # bumped on every change, so exporters skip unchanged snapshots

    # The counts, up to date whenever they are read.
    @property
    def requests(self) -> dict[tuple[str, str], int]:
        self._count_pending()
        return self._requests

    @requests.setter
    def requests(self, value: dict[tuple[str, str], int]) -> None:
        self._count_pending()
        self._requests = value

    @property
    def durations(self) -> dict[str, list[float]]:
        self._count_pending()
        return self._durations

    @durations.setter
    def durations(self, value: dict[str, list[float]]) -> None:
        self._count_pending()
        self._durations = value

    @property
    def segments(self) -> dict[str, list[float]]:
        self._count_pending()
        return self._segments

    @property
    def fallbacks(self) -> dict[str, int]:
        self._count_pending()
        return self._fallbacks

    def observe(self, request: EdgeRequest, response: EdgeResponse, timing: Timing, request_id: str) -> None:
        """The observer ``EdgeApp`` calls once per request, after the response is built.

        It only notes the request; the counting happens for a batch at a time (every 256 requests, and
        whenever the counts are read). Counting one request between everything else a request does cost
        ~8 µs of CPU in the emulator here; counted in a batch, far less (README "Measured")."""
        status = response.status
        route = route_label(timing.route or response.header(wire.ROUTE_HEADER), status)
        reason = response.header(FALLBACK_REASON_HEADER) if route in _FALLBACK_ROUTES else None
        pending = self._pending
        pending.append((route, status, timing.elapsed(), timing.parts, reason))  # no mark follows: not copied
        if len(pending) >= 256:
            self._count_pending()

    def _count_pending(self) -> None:
        pending = self._pending
        if not pending:
            return
        self._pending = []
        requests, durations, segments, fallbacks = self._requests, self._durations, self._segments, self._fallbacks
        buckets, find, size = DURATION_BUCKETS, bisect.bisect_left, len(DURATION_BUCKETS) + 2
        for route, status, seconds, parts, reason in pending:
            key = (route, _STATUS_TEXT.get(status) or str(status))
            requests[key] = requests.get(key, 0) + 1
            if reason:
                fallbacks[reason] = fallbacks.get(reason, 0) + 1
            histogram = durations.get(route)
            if histogram is None:
                histogram = durations[route] = [0.0] * size
            histogram[find(buckets, seconds)] += 1
            histogram[-1] += seconds
            for name, spent in parts:
                slot = segments.get(name)
                if slot is None:
                    slot = segments[name] = [0.0, 0.0]
                slot[0] += 1
                slot[1] += spent
        self.generation += 1

    def fallback(self, reason: str) -> None:
        fallbacks = self.fallbacks
        fallbacks[reason] = fallbacks.get(reason, 0) + 1
        self.generation += 1

    def breaker_state(self, name: str, state: str) -> None:
        self.breakers[name] = state
        self.generation += 1

    def watch_breaker(self, name: str, state: Callable[[], str]) -> None:
        """Report the breaker called ``name`` as whatever ``state()`` says when a snapshot is taken."""
        self._breaker_sources[name] = state

    def poll(self) -> None:
        """Count the noted requests and read the watched breakers' states now (an open breaker turns half-open
        with time alone)."""
        self._count_pending()
        for name, state in self._breaker_sources.items():
            current = state()
            if self.breakers.get(name) != current:
                self.breaker_state(name, current)

    def snapshot(self) -> dict[str, Any]:
        """Plain JSON-able data: what an exporter merges across processes."""
        self.poll()
        return {
            "requests": [[route, status, count] for (route, status), count in self.requests.items()],
            "durations": {route: list(values) for route, values in self.durations.items()},
            "segments": {name: list(values) for name, values in self.segments.items()},
            "fallbacks": dict(self.fallbacks),
            "breakers": dict(self.breakers),
        }


_STATUS_TEXT = {code: str(code) for code in range(100, 600)}


# The process-wide instance: the emulator exports it, the core's callers feed it.
METRICS = EdgeMetrics()


def fallback(reason: str) -> None:
    """Count one fallback answer (origin slow, down or broken), by reason."""
    METRICS.fallback(reason)


def breaker_state(name: str, state: str) -> None:
    """Record the current state of the circuit breaker called ``name`` (e.g. closed, open, half_open)."""
    METRICS.breaker_state(name, state)


def merge(snapshots: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum counters and histograms across processes; breaker states become per-state process counts."""
    requests: dict[tuple[str, str], float] = {}
    durations: dict[str, list[float]] = {}
    segments: dict[str, list[float]] = {}
    fallbacks: dict[str, float] = {}
    breakers: dict[tuple[str, str], int] = {}
    for snap in snapshots:
        for route, status, count in snap.get("requests", []):
            requests[(route, status)] = requests.get((route, status), 0) + count
        for route, values in snap.get("durations", {}).items():
            into = durations.setdefault(route, [0.0] * len(values))
            for i, value in enumerate(values[:len(into)]):
                into[i] += value
        for name, values in snap.get("segments", {}).items():
            into = segments.setdefault(name, [0.0, 0.0])
            into[0] += values[0]
            into[1] += values[1]
        for reason, count in snap.get("fallbacks", {}).items():
            fallbacks[reason] = fallbacks.get(reason, 0) + count
        for name, state in snap.get("breakers", {}).items():
            breakers[(name, state)] = breakers.get((name, state), 0) + 1
    return {"requests": requests, "durations": durations, "segments": segments, "fallbacks": fallbacks,
            "breakers": breakers}


def hit_ratio(requests: dict[tuple[str, str], float]) -> float:
    """Answered from the KV (hit or stale) over all KV lookups that decided a route; 0 with none yet."""
    cache = sum(count for (route, _), count in requests.items() if route in CACHE_ROUTES)
    hits = sum(count for (route, _), count in requests.items() if route in ("hit", "stale"))
    return hits / cache if cache else 0.0


def origin_calls_saved(requests: dict[tuple[str, str], float]) -> float:
    return sum(count for (route, _), count in requests.items() if route in SAVED_ROUTES)
