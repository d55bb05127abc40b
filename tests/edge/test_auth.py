"""API-key authentication: hashed storage and the in-process key cache."""

from __future__ import annotations

import pytest

from edge.auth import KEY_PREFIX, Authenticator, api_key_hash, api_key_record, new_api_key
from edge.errors import Unauthorized
from edge.memory import ManualClock, MemoryKV


async def test_keys_are_stored_only_as_hashes() -> None:
    """The KV holds the key's SHA-256, never the key itself."""
    kv, clock = MemoryKV(), ManualClock()
    key = new_api_key()
    await kv.put(KEY_PREFIX + api_key_hash(key), api_key_record("t", "free", "n", 0))
    names = [k.name for k in (await kv.list()).keys]
    assert names == [KEY_PREFIX + api_key_hash(key)] and key not in names[0]
    principal = await Authenticator(kv, clock).authenticate({"authorization": f"Bearer {key}"})
    assert (principal.tenant, principal.tier, principal.method) == ("t", "free", "api_key")


async def test_revoked_key_expires_from_cache() -> None:
    """A deleted key keeps working at most for the cache TTL, then is refused."""
    kv, clock = MemoryKV(), ManualClock()
    key = new_api_key()
    await kv.put(KEY_PREFIX + api_key_hash(key), api_key_record("t", "free", "n", 0))
    auth = Authenticator(kv, clock, cache_ttl_s=30)
    headers = {"authorization": f"Bearer {key}"}
    await auth.authenticate(headers)
    await kv.delete(KEY_PREFIX + api_key_hash(key))
    await auth.authenticate(headers)
    clock.advance(31)
    with pytest.raises(Unauthorized):
        await auth.authenticate(headers)


async def test_damaged_record_is_unknown_key() -> None:
    """A corrupt key record reads as an unknown key, not a server error."""
    kv = MemoryKV()
    await kv.put(KEY_PREFIX + api_key_hash("eav_x"), b"not json")
    with pytest.raises(Unauthorized):
        await Authenticator(kv, ManualClock()).authenticate({"authorization": "Bearer eav_x"})
