"""Request cache directives and the life of a cached answer."""

from __future__ import annotations

import pytest

from edge.freshness import CacheControl, freshness, parse_cache_control
from shared.wire import CachedAnswer

ENTRY = CachedAnswer(b"{}", created=100.0, fresh_until=160.0, stale_until=200.0, keep_until=1000.0)


@pytest.mark.parametrize("header, expected", [
    (None, CacheControl()),
    ("no-cache", CacheControl(no_cache=True)),
    ("No-Store, max-age=30", CacheControl(no_store=True, max_age=30)),
    ('max-age="5"', CacheControl(max_age=5)),
    ("max-age=soon, private", CacheControl()),
    ("max-age=-3", CacheControl(max_age=0)),
])
def test_parse(header: str | None, expected: CacheControl) -> None:
    """Directives are read case-insensitively; malformed and unknown ones are ignored."""
    assert parse_cache_control(header) == expected


@pytest.mark.parametrize("now, state", [(120.0, "fresh"), (170.0, "stale"), (500.0, "error-only"), (1000.0, None)])
def test_life_of_an_entry(now: float, state: str | None) -> None:
    """Fresh until the TTL, then stale-while-revalidate, then only for errors, then gone."""
    assert freshness(ENTRY, now, CacheControl()) == state


def test_max_age_limits_what_counts_as_fresh() -> None:
    """A client's max-age makes an older fresh entry usable only as an error fallback."""
    assert freshness(ENTRY, 150.0, CacheControl(max_age=60)) == "fresh"
    assert freshness(ENTRY, 150.0, CacheControl(max_age=10)) == "error-only"


def test_deadlines_never_run_backwards() -> None:
    """An entry written without stale windows is stale and kept exactly until it is no longer fresh."""
    bare = CachedAnswer(b"{}", created=0.0, fresh_until=60.0)
    assert bare.stale_until == 60.0 and bare.keep_until == 60.0
    assert freshness(bare, 59.0, CacheControl()) == "fresh" and freshness(bare, 60.0, CacheControl()) is None
