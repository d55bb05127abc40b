"""What one response says about how it was served: route, scope, age, declared lifetime, and whom the answer
was generated for (the simulator names the tenant and the end user, ``origin.generators.simulator``).

Shared by the evaluation (``loadtest/scenarios.py``, httpx) and the locust scenarios (``requests``), so both
read a response the same way.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edge.metrics import route_label
from origin.generators.simulator import answered_for

CACHED_ROUTES = frozenset({"hit", "stale"})
MAX_AGE_TARGET_S = 300  # issue 16: a time-sensitive answer is never served from an entry older than this


def parse_cache_control(value: str | None) -> dict[str, int | None]:
    """Response ``Cache-Control`` directives (RFC 9111 §5.2), lower-cased; a number when the value is one.

    Malformed parts are skipped rather than guessed at: a directive this cannot read is one the evaluation
    cannot credit."""
    directives: dict[str, int | None] = {}
    for part in (value or "").split(","):
        name, _, raw = part.strip().partition("=")
        name = name.strip().lower()
        if not name:
            continue
        raw = raw.strip().strip('"')
        if not raw:
            directives[name] = None
        elif raw.isascii() and raw.isdigit():
            directives[name] = int(raw)
    return directives


@dataclass(frozen=True, slots=True)
class Served:
    """How one request was answered, as the client sees it."""

    status: int
    route: str
    scope: str | None = None  # x-edge-scope, when the edge says it
    age_s: int | None = None
    cache_control: str | None = None
    tenant: str | None = None  # whom the answer names (the simulator's echo), if anyone
    user: str | None = None

    @property
    def from_kv(self) -> bool:
        return self.status == 200 and self.route in CACHED_ROUTES

    def lifetime_s(self) -> int | None:
        """The longest this entry says it may be served, counted from its creation: ``max-age`` (its freshness
        lifetime, of which ``Age`` has passed: RFC 9111 §4.2) plus ``stale-while-revalidate`` if declared."""
        directives = parse_cache_control(self.cache_control)
        max_age = directives.get("max-age")
        if max_age is None:
            return None
        return max_age + (directives.get("stale-while-revalidate") or 0)

    def keeps_nothing(self) -> bool:
        directives = parse_cache_control(self.cache_control)
        return "no-store" in directives or directives.get("max-age") == 0

    def stale_if_error_s(self) -> int | None:
        return parse_cache_control(self.cache_control).get("stale-if-error")


def content_of(body: bytes, streamed: bool) -> str | None:
    """The assistant's text in a chat completion, or in a stream of chunks; None when there is none."""
    with contextlib.suppress(ValueError, KeyError, IndexError, TypeError, AttributeError):
        if not streamed:
            return str(json.loads(body)["choices"][0]["message"]["content"])
        parts = []
        for line in body.decode("utf-8", "replace").splitlines():
            data = line.removeprefix("data:").strip() if line.startswith("data:") else ""
            if data and data != "[DONE]":
                event: Any = json.loads(data)
                parts.append(str(event["choices"][0]["delta"].get("content") or ""))
        return "".join(parts)
    return None


def served_from_parts(status: int, headers: Mapping[str, str], content: str | None) -> Served:
    """``headers`` must look names up case-insensitively (httpx's and requests' both do)."""
    age = headers.get("age")
    named = answered_for(content) if status == 200 and content else None
    tenant, user = named if named else (None, None)
    return Served(status, route_label(headers.get("x-edge-route"), status), headers.get("x-edge-scope"),
                  int(age) if age and age.isascii() and age.isdigit() else None, headers.get("cache-control"),
                  tenant, user)
