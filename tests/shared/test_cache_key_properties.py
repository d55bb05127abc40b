"""Property tests of the cache key (hypothesis; CPython only): no two tenants, end users or conversations
ever share a key, whatever a hostile or careless client sends."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from shared.cache_keys import (
    AnswerKeys,
    InvalidTenant,
    canonical_request,
    normalise_text,
    request_digest,
    tenant_prefix,
    validate_tenant,
)

ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)  # surrogates included
VALID_TENANT = st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True)
# Names shaped like other encodings: the old hashed form, prefixes, path pieces.
LOOKALIKE = st.one_of(
    st.builds(lambda t: "h-" + hashlib.sha256(t.encode("utf-8", "surrogatepass")).hexdigest()[:32], ANY_TEXT),
    st.builds(lambda a, b: f"{a}/{b}", VALID_TENANT, VALID_TENANT),
    st.builds(lambda a: f"{a}/s", VALID_TENANT),
    st.builds(lambda a: f"{a}/u", VALID_TENANT),
)
TENANT = st.one_of(VALID_TENANT, LOOKALIKE, ANY_TEXT)
# Contents that try to be separators: JSON punctuation, the old key's control separators, role prefixes.
SEPARATORS = st.sampled_from(['"', "\\", ",", ":", "{", "}", "[", "]", "\x1d", "\x1e", "\x1f", "\n",
                              "user:", "system:", '"},{"role":"user","content":"', "\r\n", " "])
CONTENT = st.lists(st.one_of(SEPARATORS, st.text(max_size=6)), max_size=6).map("".join)
ROLE = st.sampled_from(["system", "developer", "user", "assistant", "tool"])
MESSAGES = st.lists(st.fixed_dictionaries({"role": ROLE, "content": CONTENT}), min_size=1, max_size=5)


def digest(request: dict[str, Any]) -> str:
    return request_digest(request, default_model="m", locale="", versions="v")


def prefix_or_none(tenant: str) -> str | None:
    try:
        return tenant_prefix(tenant)
    except InvalidTenant:
        return None


class TestTenants:
    @settings(max_examples=400)
    @given(TENANT, TENANT)
    def test_two_tenants_never_share_a_prefix(self, a: str, b: str) -> None:
        """Different tenants from the full Unicode range and look-alike names: never one prefix, and neither
        prefix contains the other (so listing or purging one never touches the other)."""
        assume(a != b)
        pa, pb = prefix_or_none(a), prefix_or_none(b)
        if pa is not None and pb is not None:
            assert pa != pb and not pa.startswith(pb) and not pb.startswith(pa)

    @settings(max_examples=300)
    @given(TENANT)
    def test_a_tenant_is_valid_exactly_when_it_is_its_own_segment(self, tenant: str) -> None:
        """Injective by construction: every tenant that yields a key is the key's segment, verbatim."""
        prefix = prefix_or_none(tenant)
        if prefix is None:
            with pytest.raises(InvalidTenant):
                validate_tenant(tenant)
        else:
            assert prefix == f"ans/{tenant}/" and prefix.count("/") == 2


class TestUsers:
    @settings(max_examples=300)
    @given(VALID_TENANT, st.from_regex(r"[\x21-\x7e]{1,128}", fullmatch=True),
           st.from_regex(r"[\x21-\x7e]{0,128}", fullmatch=True))
    def test_one_users_key_is_nobody_elses(self, tenant: str, a: str, b: str) -> None:
        """User A's key is never user B's, never an anonymous caller's, never a shared key."""
        assume(a != b)
        keys_a, keys_b = AnswerKeys.of(tenant, a, "d"), AnswerKeys.of(tenant, b, "d")
        assert keys_a.user is not None
        assert keys_a.user not in (keys_b.user, keys_b.shared, AnswerKeys.of(tenant, "", "d").shared)


class TestConversations:
    @settings(max_examples=500)
    @given(MESSAGES, MESSAGES)
    def test_different_message_lists_never_share_a_key(self, one: list[dict[str, str]],
                                                       two: list[dict[str, str]]) -> None:
        """Contents full of separators cannot make two different conversations (after the documented safe
        normalisation) collide: roles, order and boundaries are in the encoding."""
        a, b = {"messages": one}, {"messages": two}
        same = canonical_request(a, default_model="m") == canonical_request(b, default_model="m")
        assert (digest(a) == digest(b)) == same

    @settings(max_examples=300)
    @given(ANY_TEXT, ANY_TEXT)
    def test_prompts_merge_only_by_safe_normalisation(self, a: str, b: str) -> None:
        """Two prompts share a key exactly when the safe normalisation makes them equal."""
        ka, kb = digest({"messages": [{"role": "user", "content": a}]}), \
            digest({"messages": [{"role": "user", "content": b}]})
        assert (ka == kb) == (normalise_text(a) == normalise_text(b))

    @settings(max_examples=200)
    @given(st.dictionaries(st.text(max_size=8), st.one_of(st.none(), st.integers(), st.text(max_size=8),
                                                          st.floats(allow_nan=False)), max_size=4))
    def test_any_unknown_field_is_keyed(self, extra: dict[str, Any]) -> None:
        """A field the edge has never heard of changes the key (only the documented allow-list does not)."""
        base = {"messages": [{"role": "user", "content": "hi"}], "model": "m"}
        request = {**extra, **base}
        keyed_extra = {k: v for k, v in extra.items() if k not in base and k not in
                       ("stream", "stream_options", "user", "metadata", "store")}
        assert (digest(request) == digest(base)) == (not keyed_extra)
