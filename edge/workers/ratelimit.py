"""RateLimiter over Cloudflare's rate-limiting binding (``[[ratelimits]]`` in wrangler.toml).

The binding is configured with one limit and a period of 10 or 60 seconds, counts per Cloudflare
location, and answers only ``{success}``. So this adapter serves only budgets that equal the binding's
configuration and hands any other (limit, window) to ``fallback`` (e.g. the KV-backed sliding window);
without a fallback such a budget is a configuration error.

The binding is used as the workers SDK presents it (its JS constructor is ``Ratelimit``, which the SDK's
env wrapper wraps): options go in as a dict, the answer comes back converted by ``to_py()``, a dict.

The binding does not say how much budget is left: ``remaining`` is reported as an upper bound
(``limit - 1`` after an allowed request, 0 after a refused one) and ``reset_s`` as the whole period.
"""

from __future__ import annotations

from typing import Any

from pyodide.ffi import JsException, JsProxy  # type: ignore[import-not-found]

from edge.errors import EdgeError
from edge.ports import RateDecision, RateLimiter

PERIODS_S = (10, 60)


class WorkersRateLimiter:
    def __init__(self, binding: Any, *, limit: int, period_s: int, fallback: RateLimiter | None = None) -> None:
        if period_s not in PERIODS_S:
            raise ValueError(f"the rate-limiting binding allows periods of 10 or 60 s, not {period_s}")
        if isinstance(binding, JsProxy):
            raise TypeError("WorkersRateLimiter takes the binding as the workers SDK presents it "
                            "(self.env.EAVES_RATE_LIMIT), not the raw JS object")
        self._binding = binding
        self._limit = limit
        self._period_s = period_s
        self._fallback = fallback

    def fits(self, limit: int, window_s: int) -> bool:
        return (limit, window_s) == (self._limit, self._period_s)

    async def acquire(self, key: str, limit: int, window_s: int) -> RateDecision:
        if not self.fits(limit, window_s):
            if self._fallback is None:
                raise ValueError(f"the rate-limiting binding is set to {self._limit} per {self._period_s} s; "
                                 f"a budget of {limit} per {window_s} s needs a fallback limiter")
            return await self._fallback.acquire(key, limit, window_s)
        try:
            outcome = await self._binding.limit({"key": key})
        except JsException as exc:
            raise EdgeError(f"The rate-limiting binding failed: {exc}") from exc
        if outcome["success"]:
            return RateDecision(True, limit, limit - 1, float(window_s))
        return RateDecision(False, limit, 0, float(window_s))
