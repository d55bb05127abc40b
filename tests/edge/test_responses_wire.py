"""The Responses translation and the stream rewriters as pure functions: standard library only, so this file
also runs inside Pyodide (tests/pyodide/test_pyodide_tier.py), where the edge runs in production."""

from __future__ import annotations

import json
from typing import Any

import pytest

from edge import responses, streaming
from shared import sse
from shared.wire import WireError

COMPLETION = json.dumps({"id": "chatcmpl-abc", "object": "chat.completion", "created": 7, "model": "m",
                         "choices": [{"index": 0, "message": {"role": "assistant", "content": "héllo wörld"},
                                      "finish_reason": "stop"}],
                         "usage": {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}}).encode()


def data_events(raw: bytes) -> list[Any]:
    return [json.loads(d) if d != b"[DONE]" else "[DONE]"
            for d in (sse.data_of(e) for e in sse.EventReader().feed(raw)) if d is not None]


class TestToChat:
    def test_string_input_and_instructions(self) -> None:
        """A string input is one user message; instructions come first as the system message."""
        chat = responses.to_chat({"model": "m", "input": "hi", "instructions": "Be brief.", "max_output_tokens": 9,
                                  "temperature": 0.2, "top_p": 0.9, "user": "u1", "metadata": {"a": "b"},
                                  "store": True})
        assert chat == {"model": "m", "messages": [{"role": "system", "content": "Be brief."},
                                                   {"role": "user", "content": "hi"}],
                        "max_tokens": 9, "temperature": 0.2, "top_p": 0.9, "user": "u1"}

    def test_message_items_with_text_parts(self) -> None:
        """Message items keep their roles and order; input_text and output_text parts become text parts."""
        chat = responses.to_chat({"input": [
            {"role": "developer", "content": "rules"},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "q1"}]},
            {"role": "assistant", "content": [{"type": "output_text", "text": "a1", "annotations": []}]},
            {"role": "user", "content": "q2"}]})
        assert chat["messages"] == [{"role": "developer", "content": "rules"},
                                    {"role": "user", "content": [{"type": "text", "text": "q1"}]},
                                    {"role": "assistant", "content": [{"type": "text", "text": "a1"}]},
                                    {"role": "user", "content": "q2"}]

    def test_formats_reasoning_and_stream(self) -> None:
        """text.format maps to response_format, reasoning.effort to reasoning_effort; a stream asks for usage."""
        schema = {"type": "json_schema", "name": "x", "schema": {"type": "object"}, "strict": True}
        chat = responses.to_chat({"input": "hi", "text": {"format": schema, "verbosity": "low"},
                                  "reasoning": {"effort": "low"}, "stream": True, "safety_identifier": "s1",
                                  "tools": [], "tool_choice": "auto", "include": None, "background": False})
        assert chat["response_format"] == {"type": "json_schema",
                                           "json_schema": {"name": "x", "schema": {"type": "object"}, "strict": True}}
        assert chat["verbosity"] == "low" and chat["reasoning_effort"] == "low"
        assert chat["safety_identifier"] == "s1" and "user" not in chat
        assert chat["stream"] is True and chat["stream_options"] == {"include_usage": True}

    def test_function_tools_and_their_items(self) -> None:
        """Function tools become chat tools; function_call items one assistant turn with tool_calls, and their
        outputs tool messages, in order."""
        chat = responses.to_chat({"input": [
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": '{"city":"Paris"}'},
            {"type": "function_call", "call_id": "call_2", "name": "weather", "arguments": '{"city":"Rome"}'},
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
            {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "rain"}]}],
            "tools": [{"type": "function", "name": "weather", "parameters": {"type": "object"}, "strict": True}],
            "tool_choice": {"type": "function", "name": "weather"}, "parallel_tool_calls": False})
        assert chat["tools"] == [{"type": "function", "function": {"name": "weather",
                                                                   "parameters": {"type": "object"}, "strict": True}}]
        assert chat["tool_choice"] == {"type": "function", "function": {"name": "weather"}}
        assert chat["parallel_tool_calls"] is False
        assert chat["messages"][1] == {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Paris"}'}},
            {"id": "call_2", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Rome"}'}}]}
        assert chat["messages"][2:] == [{"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
                                        {"role": "tool", "tool_call_id": "call_2",
                                         "content": [{"type": "text", "text": "rain"}]}]

    @pytest.mark.parametrize(("request_", "param"), [
        ({"input": "hi", "previous_response_id": "resp_1"}, "previous_response_id"),
        ({"input": "hi", "prompt": {"id": "pmpt_1"}}, "prompt"),
        ({"input": "hi", "top_logprobs": 3}, "top_logprobs"),
        ({"input": "hi", "tools": [{"type": "file_search"}]}, "tools[0].type"),
        ({"input": "hi", "tools": [{"type": "function"}]}, "tools[0].name"),
        ({"input": "hi", "tools": [{"type": "function", "name": "f"}], "tool_choice": {"type": "mcp"}},
         "tool_choice"),
        ({"input": [{"role": "user", "content": "q"}, {"type": "function_call", "call_id": "c", "name": "f",
                                                       "arguments": {}}]}, "input[1].arguments"),
        ({"input": [{"role": "assistant", "content": "only me"}]}, "input"),
        ({"input": "hi", "tool_choice": "required"}, "tool_choice"),
        ({"input": "hi", "reasoning": {"summary": "auto"}}, "reasoning.summary"),
        ({"input": "hi", "text": {"format": {"type": "grammar"}}}, "text.format"),
        ({"input": [{"role": "critic", "content": "x"}]}, "input[0].role"),
        ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
         "input[0].content[0].type"),
        ({"input": [{"type": "reasoning", "summary": []}]}, "input[0].type"),
        ({"input": 7}, "input"),
        ({"input": "hi", "stream": "yes"}, "stream"),
    ])
    def test_refused_naming_the_field(self, request_: dict[str, Any], param: str) -> None:
        """What the origin cannot serve raises WireError naming the field."""
        with pytest.raises(WireError) as caught:
            responses.to_chat(request_)
        assert caught.value.param == param


class TestResponseObject:
    def test_completion_becomes_a_response(self) -> None:
        """A chat completion renders as a completed Response with ids derived from the completion's."""
        call = responses.ResponsesCall({"input": "x", "instructions": "i", "metadata": {"k": "v"}})
        got = call.response_object(json.loads(COMPLETION))
        assert got["id"] == "resp_abc" and got["output"][0]["id"] == "msg_abc" and got["created_at"] == 7
        assert got["status"] == "completed" and got["instructions"] == "i" and got["metadata"] == {"k": "v"}
        assert got["output"][0]["content"][0]["text"] == "héllo wörld"
        assert got["usage"]["input_tokens"] == 2 and got["usage"]["output_tokens"] == 3
        assert got["usage"]["total_tokens"] == 5


def _every_split(data: bytes) -> list[list[bytes]]:
    """The stream cut once at every position, and into single bytes."""
    return [[data[:i], data[i:]] for i in range(len(data) + 1)] + [[data[i:i + 1] for i in range(len(data))]]


class TestStreamRewriters:
    def test_usage_shaping_at_every_split(self) -> None:
        """The shaped stream is the same bytes wherever the source stream was cut."""
        source = streaming.replay(COMPLETION)
        for include in (False, True):
            whole = streaming.shape_usage(source, include)
            assert isinstance(whole, bytes)
            for parts in _every_split(source):
                shaper = streaming.UsageShaper(include)
                assert b"".join(shaper.feed(p) for p in parts) + shaper.close() == whole
            events = data_events(whole)
            assert events[-1] == "[DONE]"
            with_usage = [e for e in events[:-1] if "usage" in e]
            assert ([e["choices"] for e in with_usage] == [[]]) is include and (with_usage == []) is not include

    def test_responses_events_at_every_split(self) -> None:
        """The Responses events are the same wherever the chat stream was cut, and carry the whole text."""
        source = streaming.replay(COMPLETION)
        call = responses.ResponsesCall({"input": "x"})
        writer = responses.EventWriter(call)
        whole = writer.feed(source) + writer.close()
        for parts in _every_split(source):
            writer = responses.EventWriter(call)
            assert b"".join(writer.feed(p) for p in parts) + writer.close() == whole
        events = data_events(whole)
        assert events[-1]["type"] == "response.completed"
        assert events[-1]["response"]["output"][0]["content"][0]["text"] == "héllo wörld"

    def test_a_stream_cut_short_fails_visibly(self) -> None:
        """A chat stream that ends without [DONE] ends the Responses stream with error and response.failed."""
        source = streaming.replay(COMPLETION)
        writer = responses.EventWriter(responses.ResponsesCall({"input": "x"}))
        out = writer.feed(source[: source.index(b"data: [DONE]")]) + writer.close()
        assert [e["type"] for e in data_events(out)][-2:] == ["error", "response.failed"]

    def test_tool_calls_stream_as_function_call_items(self) -> None:
        """Tool-call deltas become a function_call item: added, argument deltas, done, in the final output."""
        call = {"id": "call_9", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Oslo"}'}}
        completion = json.dumps({"id": "chatcmpl-t", "object": "chat.completion", "created": 1, "model": "m",
                                 "choices": [{"index": 0, "message": {"role": "assistant", "content": None,
                                                                      "tool_calls": [call]},
                                              "finish_reason": "tool_calls"}]}).encode()
        call_ = responses.ResponsesCall({"input": "x"})
        writer = responses.EventWriter(call_)
        events = data_events(writer.feed(streaming.replay(completion)) + writer.close())
        kinds = [e["type"] for e in events]
        assert kinds == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.function_call_arguments.delta", "response.function_call_arguments.done",
                         "response.output_item.done", "response.completed"]
        item = events[-1]["response"]["output"][0]
        assert item == {"type": "function_call", "id": "fc_9", "call_id": "call_9", "name": "weather",
                        "arguments": '{"city":"Oslo"}', "status": "completed"}
        assert call_.response_object(json.loads(completion))["output"] == [item]

    def test_heartbeats_pass_through(self) -> None:
        """A heartbeat comment in the chat stream stays a comment in the Responses stream."""
        writer = responses.EventWriter(responses.ResponsesCall({"input": "x"}))
        assert writer.feed(sse.HEARTBEAT) == sse.HEARTBEAT
