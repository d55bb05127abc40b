"""The request parser's memo: same answers as parsing afresh, errors never remembered, bounded."""

from __future__ import annotations

import json

import pytest

from edge.parsing import RequestParser
from shared import wire
from shared.cache_keys import request_digest


def body(prompt: str) -> bytes:
    return json.dumps({"model": "m", "messages": [{"role": "user", "content": prompt}]}).encode()


def make(**kwargs: int) -> RequestParser:
    return RequestParser(default_model="m", max_prompt_chars=1000, versions="v", **kwargs)


class TestRequestParser:
    def test_digest_matches_a_fresh_parse(self) -> None:
        """A remembered result is the one parsing and hashing afresh gives, per locale; the tenant is not
        in the digest (it is the key's path, added by keys_for)."""
        parser = make()
        raw = {"model": "m", "messages": [{"role": "user", "content": "Hello?"}]}
        for _ in range(2):
            digest = parser.parse(body("Hello?"), "fr")[1]
            assert digest == request_digest(raw, default_model="m", locale="fr", versions="v")
        assert parser.parse(body("Hello?"), "")[1] != digest
        assert parser.keys_for("acme", "", digest).shared == f"ans/acme/s/{digest}"
        assert parser.keys_for("beta", "", digest).shared == f"ans/beta/s/{digest}"

    def test_keys_are_remembered_per_tenant_and_user_and_bounded(self) -> None:
        """keys_for gives what AnswerKeys.of gives, per (tenant, user, digest), in a bounded table."""
        from shared.cache_keys import AnswerKeys

        parser = make(max_entries=2)
        for tenant, user in (("acme", ""), ("acme", "alice"), ("beta", "alice"), ("acme", "alice")):
            assert parser.keys_for(tenant, user, "d") == AnswerKeys.of(tenant, user, "d")
        assert len(parser._keys) == 2

    def test_invalid_body_raises_every_time(self) -> None:
        """A body that fails validation is not remembered."""
        parser = make()
        for _ in range(2):
            with pytest.raises(wire.WireError):
                parser.parse(b'{"messages": []}', "")
        assert len(parser) == 0

    def test_bounded_in_entries_and_body_size(self) -> None:
        """The table holds at most max_entries bodies, none larger than the size limit."""
        parser = make(max_entries=3, max_body_bytes=200)
        for i in range(5):
            parser.parse(body(f"question {i}"), "")
        parser.parse(body("x" * 300), "")
        assert len(parser) == 3
