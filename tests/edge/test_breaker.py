"""The circuit breaker's states: closed, open, half-open with one probe."""

from __future__ import annotations

from edge.breaker import CircuitBreaker
from edge.memory import ManualClock


def make() -> tuple[CircuitBreaker, ManualClock]:
    clock = ManualClock()
    return CircuitBreaker(clock.monotonic, failure_threshold=3, cooldown_s=10.0), clock


def test_opens_after_consecutive_failures() -> None:
    """Three failures in a row open it; a success in between resets the count."""
    breaker, _ = make()
    for _ in range(2):
        breaker.record_failure()
    breaker.record_success()
    for _ in range(2):
        breaker.record_failure()
    assert breaker.state == "closed" and breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow()
    assert 9.9 < breaker.retry_after_s() <= 10.0


def test_half_open_lets_one_probe_through() -> None:
    """After the cooldown exactly one request probes; others keep being refused until it reports."""
    breaker, clock = make()
    for _ in range(3):
        breaker.record_failure()
    clock.advance(10.0)
    assert breaker.state == "half_open"
    assert breaker.allow() is True
    assert breaker.allow() is False


def test_probe_success_closes() -> None:
    """A successful probe closes the circuit."""
    breaker, clock = make()
    for _ in range(3):
        breaker.record_failure()
    clock.advance(10.0)
    breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed" and breaker.allow()


def test_probe_failure_reopens_for_a_full_cooldown() -> None:
    """A failed probe opens the circuit again, for a whole new cooldown."""
    breaker, clock = make()
    for _ in range(3):
        breaker.record_failure()
    clock.advance(10.0)
    breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open"
    clock.advance(9.0)
    assert not breaker.allow()
    clock.advance(1.0)
    assert breaker.allow()


def test_lost_probe_is_replaced() -> None:
    """A probe that never reports (its request vanished) does not wedge the breaker half-open forever."""
    clock = ManualClock()
    breaker = CircuitBreaker(clock.monotonic, failure_threshold=1, cooldown_s=1.0, probe_timeout_s=30.0)
    breaker.record_failure()
    clock.advance(1.0)
    assert breaker.allow() and not breaker.allow()
    clock.advance(30.0)
    assert breaker.allow()
