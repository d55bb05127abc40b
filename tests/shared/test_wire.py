"""Parsing chat completion requests: what is accepted, and what each bad input is told."""

from __future__ import annotations

import json

import pytest

from shared.wire import CachedAnswer, WireError, parse_chat_request


def parse(payload: object, **kwargs: int) -> object:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return parse_chat_request(body, default_model="dflt", max_prompt_chars=kwargs.get("max_chars", 100))


class TestAccepted:
    def test_minimal_request(self) -> None:
        """Only messages are required; the model defaults."""
        chat = parse({"messages": [{"role": "user", "content": "hi"}]})
        assert chat.model == "dflt" and chat.prompt == "hi" and not chat.stream  # type: ignore[attr-defined]

    def test_prompt_is_last_user_message_and_history_is_kept(self) -> None:
        """The prompt is the last user message; system text and earlier turns are carried separately."""
        chat = parse({"model": "m", "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "answer"},
            {"role": "user", "content": [{"type": "text", "text": "second"}]},
        ]})
        assert chat.prompt == "second" and chat.system == "be brief"  # type: ignore[attr-defined]
        assert "first" in chat.history and "answer" in chat.history  # type: ignore[attr-defined]

    def test_unknown_fields_pass(self) -> None:
        """Fields this edge does not know are accepted and change nothing it reads, as OpenAI clients send many;
        they still reach the origin in the body."""
        plain = parse({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 9})
        extra = parse({"messages": [{"role": "user", "content": "hi", "name": "ann"}], "max_tokens": 9, "seed": 3,
                       "logprobs": False, "response_format": {"type": "text"}, "x_vendor": [1, {"a": None}]})
        assert extra == plain
        assert extra.raw["seed"] == 3 and extra.raw["x_vendor"] == [1, {"a": None}]  # type: ignore[attr-defined]


@pytest.mark.parametrize("payload, param, message", [
    (b"{nope", None, "not valid JSON"),
    (b"\xff\xfe", None, "not valid JSON"),
    ([1, 2], None, "JSON object"),
    ({}, "messages", "required"),
    ({"messages": []}, "messages", "non-empty"),
    ({"messages": "hi"}, "messages", "non-empty array"),
    ({"messages": [{"role": "robot", "content": "x"}]}, "messages", "role"),
    ({"messages": [{"role": "assistant", "content": "x"}]}, "messages", "user message"),
    ({"messages": [{"role": "user", "content": "   "}]}, "messages", "empty"),
    ({"messages": [{"role": "user", "content": 42}]}, "messages[0].content", "string"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "messages[0].content", "only text"),
    ({"messages": [{"role": "user", "content": "x" * 101}]}, "messages", "at most 100"),
    ({"model": 7, "messages": [{"role": "user", "content": "x"}]}, "model", "non-empty string"),
    ({"stream": "yes", "messages": [{"role": "user", "content": "x"}]}, "stream", "true or false"),
    ({"max_tokens": 0, "messages": [{"role": "user", "content": "x"}]}, "max_tokens", "positive"),
    ({"temperature": "hot", "messages": [{"role": "user", "content": "x"}]}, "temperature", "between"),
    ({"temperature": 9, "messages": [{"role": "user", "content": "x"}]}, "temperature", "between"),
    ({"n": 3, "messages": [{"role": "user", "content": "x"}]}, "n", "only 'n': 1"),
    ({"user": 5, "messages": [{"role": "user", "content": "x"}]}, "user", "wrong type"),
])
def test_bad_input_names_the_problem(payload: object, param: str | None, message: str) -> None:
    """Every malformed request raises WireError naming the field and the problem."""
    with pytest.raises(WireError, match=message) as info:
        parse(payload)
    assert info.value.param == param


def test_cached_answer_metadata_round_trip() -> None:
    """A cached answer's metadata fits Workers KV's 1 KiB and reads back; foreign metadata is a miss."""
    answer = CachedAnswer(b"{}", 10.0, 70.0, "greeting" * 20)
    meta = answer.metadata()
    assert len(json.dumps(meta)) < 1024
    back = CachedAnswer.from_kv(b"{}", meta)
    assert back is not None and back.fresh_until == 70.0
    assert CachedAnswer.from_kv(b"{}", {"unrelated": 1}) is None



def test_the_same_entry_is_decoded_once() -> None:
    """The same body object with equal metadata (what the LMDB KV hands out for an unchanged entry) gives the
    answer decoded the first time."""
    body = json.dumps({"answer": "once"}).encode()
    meta = CachedAnswer(body, 10.0, 70.0, "oos").metadata()
    first = CachedAnswer.from_kv(body, meta)
    assert first is not None and CachedAnswer.from_kv(body, dict(meta)) is first

