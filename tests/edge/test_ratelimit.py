"""Sliding-window rate limiting: the pure math and the in-memory limiter."""

from __future__ import annotations

import math

from edge.memory import ManualClock, MemoryRateLimiter
from edge.ratelimit import WindowState, rate_limit_headers, sliding_window


class TestSlidingWindow:
    def test_allows_up_to_limit_then_refuses(self) -> None:
        """Within one window exactly `limit` requests pass; the next is refused."""
        state = None
        outcomes = []
        for _ in range(6):
            state, decision = sliding_window(state, 1000.0, 5, 60)
            outcomes.append(decision.allowed)
        assert outcomes == [True] * 5 + [False]

    def test_refused_requests_are_not_counted(self) -> None:
        """Hammering while refused does not push the client's recovery further out."""
        state = None
        for _ in range(5):
            state, _ = sliding_window(state, 1000.0, 5, 60)
        first_retry = sliding_window(state, 1000.0, 5, 60)[1].reset_s
        for _ in range(100):
            state, _ = sliding_window(state, 1000.0, 5, 60)
        assert state is not None and state.current == 5
        assert sliding_window(state, 1000.0, 5, 60)[1].reset_s == first_retry

    def test_previous_window_weighs_in(self) -> None:
        """A full previous window still counts, decaying linearly through the current one."""
        state = WindowState(window=16, current=10, previous=0)  # window 16 = [960, 1020)
        # At 1035 (25% into window 17) the estimate is 10 * 0.75 = 7.5: two more fit under a limit of 10.
        allowed = []
        for _ in range(3):
            state, decision = sliding_window(state, 1035.0, 10, 60)
            allowed.append(decision.allowed)
        assert allowed == [True, True, False]

    def test_retry_after_is_when_a_slot_frees(self) -> None:
        """Retry-After points at the moment the estimate leaves room: one second later fits, earlier does not."""
        state = WindowState(window=16, current=10, previous=0)
        state, _ = sliding_window(state, 1035.0, 10, 60)
        state, _ = sliding_window(state, 1035.0, 10, 60)
        state, refused = sliding_window(state, 1035.0, 10, 60)
        assert not refused.allowed
        wait = refused.reset_s
        assert not sliding_window(state, 1035.0 + wait - 0.5, 10, 60)[1].allowed
        assert sliding_window(state, 1035.0 + wait + 0.01, 10, 60)[1].allowed

    def test_retry_after_when_current_window_is_full(self) -> None:
        """When the current window alone is full, the wait runs into the next window."""
        state = None
        for _ in range(4):
            state, _ = sliding_window(state, 1200.0, 4, 60)  # window 20 starts at 1200
        _, refused = sliding_window(state, 1210.0, 4, 60)
        # Next window starts at 1260; 4 * (1 - t/60) <= 3 needs t >= 15: 50 + 15 s.
        assert math.isclose(refused.reset_s, 65.0)

    def test_old_state_is_forgotten(self) -> None:
        """Counts older than the previous window are dropped."""
        state = WindowState(window=1, current=99, previous=99)
        _, decision = sliding_window(state, 10_000.0, 5, 60)
        assert decision.allowed and decision.remaining == 4

    def test_state_round_trips(self) -> None:
        """Packed state unpacks to the same value; garbage unpacks to None."""
        assert WindowState.unpack(WindowState(3, 2, 1).pack()) == WindowState(3, 2, 1)
        assert WindowState.unpack(b"x,y") is None


class TestHeaders:
    def test_refusal_headers(self) -> None:
        """A refusal carries Retry-After and RateLimit-* with whole seconds rounded up."""
        state = None
        for _ in range(2):
            state, _ = sliding_window(state, 0.5, 1, 10)
        _, refused = sliding_window(state, 0.5, 1, 10)
        headers = dict(rate_limit_headers(refused))
        assert headers["ratelimit-limit"] == "1"
        assert headers["ratelimit-remaining"] == "0"
        assert int(headers["retry-after"]) >= refused.reset_s


async def test_memory_limiter_is_per_key() -> None:
    """Each key has its own budget, and time frees it."""
    clock = ManualClock(start=6000.0)
    limiter = MemoryRateLimiter(clock)
    assert (await limiter.acquire("a", 1, 60)).allowed
    assert not (await limiter.acquire("a", 1, 60)).allowed
    assert (await limiter.acquire("b", 1, 60)).allowed
    clock.advance(120)
    assert (await limiter.acquire("a", 1, 60)).allowed
