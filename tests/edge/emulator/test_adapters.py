"""The emulator's adapters under hostile input: rate-limit counters shared across tiers and never too
long for LMDB; a request httpx refuses to write is not an origin failure."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from edge import errors
from edge.emulator.adapters import HttpxOriginClient, LmdbRateLimiter
from edge.ports import OriginRequest
from edge.ratelimit import rate_limit_key


class TestLmdbRateLimiter:
    async def test_budgets_of_different_tiers_share_one_counter(self, tmp_path: Path) -> None:
        """The emulator's counters are named by the core alone: a free (2) and a pro (3) key of one tenant
        together get 3 requests, not 5."""
        limiter = LmdbRateLimiter(tmp_path, clock=lambda: 1_000_000.0)
        name = rate_limit_key("acme", "chat")
        allowed = [(await limiter.acquire(name, limit, 60)).allowed for limit in (2, 3, 2, 3, 3)]
        assert allowed == [True, True, False, True, False]

    async def test_overlong_names_are_hashed_not_refused(self, tmp_path: Path) -> None:
        """A counter name past LMDB's 511-byte key limit still counts (hashed), never raises."""
        limiter = LmdbRateLimiter(tmp_path, clock=lambda: 1_000_000.0)
        assert [(await limiter.acquire("ü" * 600, 1, 60)).allowed for _ in range(2)] == [True, False]


async def test_a_request_httpx_refuses_to_write_is_not_an_origin_failure() -> None:
    """httpx's LocalProtocolError (raised before sending) becomes a 400 and leaves the breaker closed."""
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.LocalProtocolError("Illegal header value b'acme '")

    client = HttpxOriginClient("http://o", transport=httpx.MockTransport(refuse))
    with pytest.raises(errors.UnsendableRequest) as info:
        await client.send(OriginRequest("/v1/chat/completions", b"{}"))
    assert not isinstance(info.value, errors.UpstreamError) and info.value.status == 400
