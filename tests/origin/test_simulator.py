"""The simulator names whom each answer was generated for, and that name reads back exactly."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from origin.generators.base import GenerationRequest
from origin.generators.simulator import ANSWER_MARK, SimulatedGenerator, answer_head, answered_for

TENANTS = st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True)


def _request(prompt: str = "What is on my calendar?", tenant: str = "acme", **extra: Any) -> GenerationRequest:
    return GenerationRequest(model="m", messages=[{"role": "user", "content": prompt}], prompt=prompt,
                             tenant=tenant, extra=extra)


def _answer(generator: SimulatedGenerator, request: Any) -> str:
    async def collect() -> str:
        return "".join([piece.text async for piece in generator.stream(request)])

    return asyncio.run(collect())


class TestAnswerHead:
    @given(TENANTS, st.text(max_size=80), st.text(max_size=200))
    def test_tenant_and_user_read_back_exactly(self, tenant: str, user: str, prompt: str) -> None:
        """Any user id (brackets, quotes, unicode) and any prompt: answered_for returns what answer_head wrote."""
        content = answer_head(tenant, user, prompt) + " the answer depends"
        assert answered_for(content) == (tenant, user or None)

    def test_an_answer_without_a_head_names_nobody(self) -> None:
        """Plain simulator text, other models' text and truncated heads are not read as naming anyone."""
        for content in (f"{ANSWER_MARK} hello.", "[acme", "[acme] Something else", '[acme] [for "bob', "",
                        '[acme] [for 7] Simulated answer to: x.', '[acme] [for "bob"]Simulated answer to: x.'):
            assert answered_for(content) is None, content


class TestSimulatedGenerator:
    def test_echo_names_the_tenant_and_the_end_user(self) -> None:
        """With echo on, the answer starts with the tenant and the user the origin was told about."""
        content = _answer(SimulatedGenerator(ttft_s=0, tokens_per_s=0, echo_tenant=True),
                          _request(user="visitor-7"))
        assert answered_for(content) == ("acme", "visitor-7")

    def test_the_user_field_of_the_request_wins(self) -> None:
        """An origin that carries the end user as a request attribute (not in extra) is read the same way."""

        @dataclasses.dataclass(frozen=True)
        class WithUser:
            model: str
            messages: list[dict[str, Any]]
            prompt: str
            user: str
            system: str = ""
            max_tokens: int = 256
            tenant: str = "acme"
            extra: dict[str, Any] = dataclasses.field(default_factory=dict)

        request = WithUser("m", [], "hi there", "visitor-8")
        content = _answer(SimulatedGenerator(ttft_s=0, tokens_per_s=0, echo_tenant=True), request)
        assert answered_for(content) == ("acme", "visitor-8")

    def test_no_user_keeps_the_tenant_only_head(self) -> None:
        """Without an end user the head is the one fault runs check: ``[tenant] Simulated answer to: …``."""
        content = _answer(SimulatedGenerator(ttft_s=0, tokens_per_s=0, echo_tenant=True), _request("hello"))
        assert content.startswith("[acme] Simulated answer to: hello.")
        assert answered_for(content) == ("acme", None)

    def test_without_echo_nobody_is_named(self) -> None:
        """Echo off (the default): the answer is the plain simulated text."""
        content = _answer(SimulatedGenerator(ttft_s=0, tokens_per_s=0), _request("hello", user="visitor-7"))
        assert content.startswith("Simulated answer to: hello.") and answered_for(content) is None
