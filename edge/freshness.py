"""Freshness of cached answers and the client's say in it (RFC 9111 request directives, RFC 5861).

An entry's life, measured from when the origin wrote it:

    created ── fresh_until ── stale_until ───────── keep_until (KV expiry)
      hit        │  stale-while-revalidate │  stale-if-error only │ gone
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from shared.wire import CachedAnswer

Freshness = Literal["fresh", "stale", "error-only"]


@dataclass(frozen=True, slots=True)
class CacheControl:
    no_cache: bool = False  # don't answer from the cache; still store the new answer
    no_store: bool = False  # neither answer from nor write to the cache
    max_age: int | None = None  # accept a cached answer only up to this age (seconds)

    @property
    def may_read(self) -> bool:
        return not (self.no_cache or self.no_store)


NO_DIRECTIVES = CacheControl()


def parse_cache_control(header: str | None) -> CacheControl:
    """Request Cache-Control; unknown directives are ignored, as RFC 9111 §5.2 requires."""
    if not header:
        return NO_DIRECTIVES
    no_cache = no_store = False
    max_age: int | None = None
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        name = name.strip().lower()
        if name == "no-cache":
            no_cache = True
        elif name == "no-store":
            no_store = True
        elif name == "max-age":
            try:
                max_age = max(0, int(value.strip().strip('"')))
            except ValueError:
                continue  # a malformed max-age is ignored rather than trusted
    return CacheControl(no_cache, no_store, max_age)


def freshness(entry: CachedAnswer, now: float, control: CacheControl) -> Freshness | None:
    """How an entry may be used now, or None when it must not be used at all."""
    if now >= entry.keep_until:
        return None
    if control.max_age is not None and now - entry.created > control.max_age:
        return "error-only"  # too old for this client; still better than nothing if the origin fails
    if now < entry.fresh_until:
        return "fresh"
    if now < entry.stale_until:
        return "stale"
    return "error-only"
