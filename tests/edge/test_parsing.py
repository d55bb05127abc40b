"""The request parser's memo: same answers as parsing afresh, errors never remembered, bounded."""

from __future__ import annotations

import json

import pytest

from edge.parsing import RequestParser
from shared import wire
from shared.cache_keys import AnswerScope, answer_key


def body(prompt: str) -> bytes:
    return json.dumps({"model": "m", "messages": [{"role": "user", "content": prompt}]}).encode()


def make(**kwargs: int) -> RequestParser:
    return RequestParser(default_model="m", max_prompt_chars=1000, versions="v", **kwargs)


class TestRequestParser:
    def test_key_matches_a_fresh_parse(self) -> None:
        """A remembered result is the one parsing and hashing afresh gives, per tenant and locale."""
        parser = make()
        for _ in range(2):
            key = parser.parse(body("Hello?"), "acme", "fr")[1]
            assert key == answer_key(AnswerScope("acme", "m", "\x1d", "fr", "v"), "Hello?")
        assert parser.parse(body("Hello?"), "beta", "fr")[1] != key
        assert parser.parse(body("Hello?"), "acme", "")[1] != key

    def test_invalid_body_raises_every_time(self) -> None:
        """A body that fails validation is not remembered."""
        parser = make()
        for _ in range(2):
            with pytest.raises(wire.WireError):
                parser.parse(b'{"messages": []}', "acme", "")
        assert len(parser) == 0

    def test_bounded_in_entries_and_body_size(self) -> None:
        """The table holds at most max_entries bodies, none larger than the size limit."""
        parser = make(max_entries=3, max_body_bytes=200)
        for i in range(5):
            parser.parse(body(f"question {i}"), "acme", "")
        parser.parse(body("x" * 300), "acme", "")
        assert len(parser) == 3
