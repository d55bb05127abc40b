"""Sliding-window counter rate limiting (the two-window approximation Cloudflare describes).

The estimate is ``previous * (1 - elapsed / window) + current``: smooth like a sliding log, at the
cost of two integers per key. The math is pure; stores keep the state and make the update atomic.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from edge.ports import RateDecision


@dataclass(frozen=True, slots=True)
class WindowState:
    window: int  # index of the current window (floor(now / window_s))
    current: int
    previous: int
    window_s: int = 0  # the window length the indexes count in (0: written before it was recorded)

    def pack(self) -> bytes:
        return f"{self.window},{self.current},{self.previous},{self.window_s}".encode()

    @classmethod
    def unpack(cls, raw: bytes | None) -> WindowState | None:
        if not raw:
            return None
        try:
            parts = raw.split(b",")
            if len(parts) == 3:
                return cls(int(parts[0]), int(parts[1]), int(parts[2]))
            window, current, previous, window_s = parts
            return cls(int(window), int(current), int(previous), int(window_s))  # no generator: every request
        except ValueError:
            return None


def rate_limit_key(tenant: str, scope: str) -> str:
    """The counter's name: one per tenant and scope, whatever tier the caller's key has (so holding keys
    of several tiers never multiplies a tenant's budget), and the same short ASCII length for every
    tenant name (LMDB keys stop at 511 bytes, and a binding's key should not carry user text)."""
    found = _KEYS.get((tenant, scope))
    if found is None:
        if len(_KEYS) >= 4096:
            _KEYS.clear()  # bounded: past that many tenants each only hashes again
        digest = hashlib.sha256(tenant.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        found = _KEYS[(tenant, scope)] = f"rl/{digest}/{scope}"
    return found


# (tenant, scope) -> counter name: a tenant's requests name the same counter every time (~0.5 µs a hash).
_KEYS: dict[tuple[str, str], str] = {}


def sliding_window(state: WindowState | None, now: float, limit: int, window_s: int
                   ) -> tuple[WindowState, RateDecision]:
    """Decide one request and return the state to store. A refused request is not counted,
    so a client that backs off as told by Retry-After gets through on time."""
    index = int(now // window_s)
    elapsed = now - index * window_s
    if state is not None and state.window_s and state.window_s != window_s:
        # One tenant, keys of tiers with different windows: carry what was counted into this window.
        state = WindowState(index, math.ceil(_estimate(state, now)), 0, window_s)
    if state is None or state.window < index - 1:
        current, previous = 0, 0
    elif state.window == index - 1:
        current, previous = 0, state.current
    else:
        current, previous = state.current, state.previous
    weight = 1.0 - elapsed / window_s
    estimate = previous * weight + current
    if estimate + 1 <= limit:
        current += 1
        remaining = max(0, math.floor(limit - (previous * weight + current)))
        decision = RateDecision(True, limit, remaining, window_s - elapsed)
    else:
        decision = RateDecision(False, limit, 0, _retry_after(current, previous, elapsed, limit, window_s))
    return WindowState(index, current, previous, window_s), decision


def _estimate(state: WindowState, now: float) -> float:
    """The requests ``state`` counts at ``now``, in its own window length."""
    index = int(now // state.window_s)
    weight = 1.0 - (now - index * state.window_s) / state.window_s
    if state.window == index:
        return state.previous * weight + state.current
    if state.window == index - 1:
        return state.current * weight
    return 0.0


def _retry_after(current: int, previous: int, elapsed: float, limit: int, window_s: int) -> float:
    """Seconds until the estimate leaves room for one more request."""
    room = limit - 1
    if current <= room and previous > 0:
        # Within this window: previous's weight must fall until previous * weight + current <= room.
        wait = window_s * (1 - (room - current) / previous) - elapsed
        return max(wait, 0.001)
    # This window is full: in the next one, current becomes "previous" and decays.
    until_next = window_s - elapsed
    if current <= 0:
        return until_next
    return until_next + max(0.0, window_s * (1 - room / current))


def rate_limit_headers(decision: RateDecision) -> list[tuple[str, str]]:
    # IETF draft-ietf-httpapi-ratelimit-headers: delta-seconds, rounded up so clients never retry early.
    headers = [("ratelimit-limit", str(decision.limit)),
               ("ratelimit-remaining", str(decision.remaining)),
               ("ratelimit-reset", str(math.ceil(decision.reset_s)))]
    if not decision.allowed:
        headers.append(("retry-after", str(math.ceil(decision.reset_s))))
    return headers
