"""Cache keys: the tenant rule, what is keyed, which prompts merge and which stay apart, the key's shape.

Expected values are written out by hand from the documented recipe, never computed by the code under
test. Runs in CPython and inside Pyodide (tests/pyodide); the property tests live beside it in
test_cache_key_properties.py (hypothesis is CPython-only here).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from edge.ratelimit import rate_limit_key
from shared.cache_keys import (
    UNKEYED_FIELDS,
    AnswerKeys,
    InvalidTenant,
    InvalidUser,
    answer_keys,
    key_scope,
    normalise_text,
    request_digest,
    shared_key,
    tenant_prefix,
    user_key,
    validate_tenant,
    validate_user,
)

DEFAULT = "m"


def digest(body: dict[str, Any], *, locale: str = "", versions: str = "v") -> str:
    return request_digest(body, default_model=DEFAULT, locale=locale, versions=versions)


def ask(prompt: str, **fields: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": prompt}], **fields}


class TestTenantRule:
    @pytest.mark.parametrize("tenant", ["acme", "a", "A.b_c-9", "x" * 64, "h-0123456789abcdef0123456789abcdef"])
    def test_valid_tenants_are_their_own_segment(self, tenant: str) -> None:
        """A valid tenant id is used verbatim: the encoding is the identity on the valid set."""
        assert validate_tenant(tenant) == tenant
        assert tenant_prefix(tenant) == "ans/" + tenant + "/"

    @pytest.mark.parametrize("tenant", ["", "acme ", " acme", "acme/../beta", "a:b", "ácme", "x" * 65,
                                        "acme\n", "ten ant", "\u0430cme", "acme\x00", "tenant\ud800"])
    def test_invalid_tenants_never_build_a_key(self, tenant: str) -> None:
        """Anything outside the rule raises, in validation and in every key builder; nothing is hashed."""
        for build in (validate_tenant, tenant_prefix, lambda t: shared_key(t, "d")):
            with pytest.raises(InvalidTenant, match="A-Z, a-z, 0-9"):
                build(tenant)

    def test_old_hashed_form_is_just_another_tenant(self) -> None:
        """The old encoding hashed invalid names to 'h-<prefix>'; now that name is an ordinary, separate tenant."""
        assert tenant_prefix("h-" + hashlib.sha256(b"acme ").hexdigest()[:32]) != "ans/acme /"
        with pytest.raises(InvalidTenant):
            tenant_prefix("acme ")

    def test_rate_limit_key_is_per_tenant(self) -> None:
        """The limiter's counter is one per (tenant, bucket): no two tenants, or buckets, share one."""
        names = {rate_limit_key(t, b) for t in ("acme", "acme.", "Acme", "beta") for b in ("chat", "jobs")}
        assert len(names) == 8


class TestUserRule:
    @pytest.mark.parametrize("user", ["u1", "alice@example.com", "9f86d081-884c-4d3a", "x" * 128])
    def test_valid(self, user: str) -> None:
        """Ids websites use (e-mails, UUIDs, numeric ids) are accepted."""
        assert validate_user(user) == user

    @pytest.mark.parametrize("user", ["", "x" * 129, "a b", "ä", "a\nb", "\x7f"])
    def test_invalid(self, user: str) -> None:
        """Empty, long, spaced, non-ASCII or control characters: refused with the rule in the message."""
        with pytest.raises(InvalidUser, match="visible ASCII"):
            validate_user(user)


class TestKeyShape:
    def test_shared_and_user_paths(self) -> None:
        """Shared answers under ans/<tenant>/s/, user answers under ans/<tenant>/u/<sha256(user)[:32]>/."""
        keys = AnswerKeys.of("acme", "alice", "d" * 64)
        assert keys.shared == "ans/acme/s/" + "d" * 64
        assert keys.user == "ans/acme/u/" + hashlib.sha256(b"alice").hexdigest()[:32] + "/" + "d" * 64
        assert key_scope(keys.shared) == "shared" and key_scope(keys.user) == "user"

    def test_unknown_user_has_no_user_key(self) -> None:
        """Without an end user there is nowhere to store a user-scoped answer."""
        keys = AnswerKeys.of("acme", "", "d")
        assert keys.user is None
        assert keys.for_scope("user") is None and keys.for_scope("none") is None
        assert keys.for_scope("shared") == keys.shared

    def test_keys_fit_workers_kv(self) -> None:
        """A 64-character tenant's user key stays far below Workers KV's 512 bytes, whatever the prompt."""
        keys = answer_keys("x" * 64, "u" * 128, ask("q" * 10_000), default_model=DEFAULT, locale="en",
                           versions="v")
        assert keys.user is not None and len(keys.user.encode()) < 200

    def test_user_key_does_not_reveal_the_user(self) -> None:
        """A KV listing shows a hash, not the end user's id."""
        assert "alice" not in user_key("acme", "alice@example.com", "d")


class TestWhatIsKeyed:
    @pytest.mark.parametrize(("name", "value"), [
        ("max_tokens", 1), ("max_completion_tokens", 1), ("stop", ["\n"]), ("stop", "."), ("temperature", 0),
        ("top_p", 0.1), ("seed", 7), ("presence_penalty", 1), ("frequency_penalty", 1),
        ("logit_bias", {"50256": -100}), ("response_format", {"type": "json_object"}),
        ("tools", [{"type": "function", "function": {"name": "f"}}]), ("tool_choice", "none"),
        ("parallel_tool_calls", False), ("reasoning_effort", "low"), ("some_future_field", 1),
    ])
    def test_fields_that_can_change_the_answer(self, name: str, value: Any) -> None:
        """Every generation parameter, and any field the edge does not know, changes the key."""
        assert digest(ask("hi", **{name: value})) != digest(ask("hi"))

    @pytest.mark.parametrize(("name", "value"), [
        ("stream", True), ("stream_options", {"include_usage": True}), ("user", "alice"),
        ("metadata", {"k": "v"}), ("store", False),
    ])
    def test_documented_fields_that_cannot(self, name: str, value: Any) -> None:
        """The allow-list: delivery, bookkeeping and the end user (who goes to the scope) share the key."""
        assert name in UNKEYED_FIELDS
        assert digest(ask("hi", **{name: value})) == digest(ask("hi"))

    def test_model_locale_and_versions(self) -> None:
        """The model, the locale and the model/policy/prompt versions each change the key."""
        base = digest(ask("hi"))
        assert digest({**ask("hi"), "model": "other"}) != base
        assert digest(ask("hi"), locale="fr") != base
        assert digest(ask("hi"), versions="v2") != base

    def test_absent_model_is_the_default_model(self) -> None:
        """Leaving the model out asks the default model: one request, one key."""
        assert digest({"messages": [{"role": "user", "content": "hi"}]}) == digest(ask("hi"))

    def test_whole_messages_are_keyed(self) -> None:
        """Message fields besides role and content (name, tool_call_id) change the key too."""
        named = {"model": "m", "messages": [{"role": "user", "content": "hi", "name": "bob"}]}
        assert digest(named) != digest(ask("hi"))


# (a, b, reason): pairs that must share an entry.
MERGE = [
    ("caf\u00e9", "cafe\u0301", "NFC: the same text by Unicode's canonical equivalence"),
    ("line one\r\nline two", "line one\nline two", "CRLF and LF are the same line break"),
    ("What is a mole?  \n", "What is a mole?", "whitespace after the last character shows nothing"),
    ("\n\n  \nWhat is a mole?", "What is a mole?", "blank lines before the first line show nothing"),
]
# (a, b, reason): pairs that must stay apart.
APART = [
    ("what is 3\u00b2", "what is 32", "NFKC would fold the superscript: 3 squared is not 32"),
    ("10\u2075", "105", "NFKC: ten to the fifth is not one hundred and five"),
    ("x\u2081 + x\u2082", "x1 + x2", "NFKC: subscripts name variables"),
    ("\u2460", "1", "NFKC: a circled digit is a label, not a number"),
    ("\ufb01le", "file", "NFKC ligature: kept, compatibility forms are not merged at all"),
    ("Is the US big?", "Is the us big?", "case: a country is not a pronoun"),
    ("what is 10!", "what is 10", "trailing punctuation: 10 factorial is not 10"),
    ("Is it safe?", "Is it safe.", "a question is not a statement"),
    ("def f():\n    return 1", "def f():\n return 1", "inner whitespace: indentation is code"),
    ("    x = 1\ny = 2", "x = 1\ny = 2", "the first line's indentation is relative to the next"),
    ("a  b", "a b", "inner whitespace is kept as written (tables, ASCII art)"),
]


class TestNormalisation:
    @pytest.mark.parametrize(("a", "b", "reason"), MERGE)
    def test_pairs_that_merge(self, a: str, b: str, reason: str) -> None:
        """Normalisations that cannot change meaning give one key."""
        assert normalise_text(a) == normalise_text(b), reason
        assert digest(ask(a)) == digest(ask(b)), reason

    @pytest.mark.parametrize(("a", "b", "reason"), APART)
    def test_pairs_that_stay_apart(self, a: str, b: str, reason: str) -> None:
        """Folds that change meaning are not applied: the two prompts keep separate keys."""
        assert digest(ask(a)) != digest(ask(b)), reason

    def test_text_parts_are_normalised_like_strings(self) -> None:
        """A text part gets the same safe normalisation as string content."""
        parts = {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi \r\n"}]}]}
        again = {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}
        assert digest(parts) == digest(again)


class TestStructure:
    def test_system_text_cannot_impersonate_a_user_turn(self) -> None:
        """A system prompt ending in a user-shaped line is not a shorter system prompt plus that user turn."""
        one = {"messages": [{"role": "system", "content": "Be brief.\nuser: hi"},
                            {"role": "user", "content": "hello"}]}
        two = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"},
                            {"role": "user", "content": "hello"}]}
        assert digest(one) != digest(two)

    def test_separator_characters_in_text(self) -> None:
        """The old key's separators (\\x1d, \\x1e, \\x1f) inside text cannot merge two conversations."""
        one = {"messages": [{"role": "user", "content": "a\x1euser:b"}, {"role": "user", "content": "c"}]}
        two = {"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"},
                            {"role": "user", "content": "c"}]}
        assert digest(one) != digest(two)

    def test_one_text_part_is_the_string(self) -> None:
        """A content list of exactly one text part is the string it holds (one message, two spellings);
        two parts, or a part with more fields, stay a different request."""
        plain = {"messages": [{"role": "user", "content": "What is KV?"}]}
        one_part = {"messages": [{"role": "user", "content": [{"type": "text", "text": "What is KV?"}]}]}
        two_parts = {"messages": [{"role": "user", "content": [{"type": "text", "text": "What is"},
                                                                {"type": "text", "text": "KV?"}]}]}
        extra = {"messages": [{"role": "user", "content": [{"type": "text", "text": "What is KV?",
                                                             "cache_control": {"type": "ephemeral"}}]}]}
        assert digest(plain) == digest(one_part)
        assert len({digest(plain), digest(two_parts), digest(extra)}) == 3

    def test_role_and_order(self) -> None:
        """The same texts in another order, or under another role, are another conversation."""
        turns = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                 {"role": "user", "content": "c"}]
        swapped = [turns[0], {"role": "user", "content": "b"}, turns[2]]
        reordered = [{"role": "user", "content": "c"}, turns[1], {"role": "user", "content": "a"}]
        keys = {digest({"messages": m}) for m in (turns, swapped, reordered)}
        assert len(keys) == 3

    def test_digest_is_the_documented_recipe(self) -> None:
        """sha256 of the canonical JSON [schema, versions, locale, request without unkeyed fields]."""
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        material = '["v2","v","en",{"messages":[{"content":"hi","role":"user"}],"model":"m"}]'
        assert json.loads(material)[3] == {"messages": [{"content": "hi", "role": "user"}], "model": "m"}
        assert digest(body, locale="en") == hashlib.sha256(material.encode()).hexdigest()
