"""The OpenAI-compatible generator against a local server that speaks the chat completions API."""

from __future__ import annotations

import json

import pytest

from origin.generators import openai_compat
from origin.generators.base import GenerationError, GenerationRequest
from origin.generators.openai_compat import OpenAICompatGenerator
from tests.helpers import VirtualSleep, make_rig, read_body, sse_events, sse_text
from tests.servers import FakeOpenAI, serve

pytestmark = pytest.mark.integration
REQUEST = GenerationRequest(model="gpt-test", messages=[{"role": "user", "content": "hi"}], prompt="hi",
                            max_tokens=20, temperature=0.5, extra={"stop": ["\n\n"]})


async def collect(generator: OpenAICompatGenerator) -> tuple[str, list[dict[str, int]]]:
    text, usage = [], []
    async for piece in generator.stream(REQUEST):
        text.append(piece.text)
        if piece.usage:
            usage.append(piece.usage)
    return "".join(text), usage


def make(url: str, **kwargs: object) -> OpenAICompatGenerator:
    options = {"backoff_base_s": 0.01, "backoff_max_s": 0.05, **kwargs}
    return OpenAICompatGenerator(url + "/v1", api_key="sk-test", **options)  # type: ignore[arg-type]


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> VirtualSleep:
    """The generator's waits, recorded instead of slept."""
    virtual = VirtualSleep()
    monkeypatch.setattr(openai_compat, "asyncio", virtual)
    return virtual


class TestOpenAICompat:
    async def test_streams_text_and_reports_exact_usage(self) -> None:
        """It streams the deltas and passes the upstream's usage through; the request is well formed."""
        fake = FakeOpenAI()
        with serve(fake.app()) as url:
            generator = make(url, model="upstream-model")
            text, usage = await collect(generator)
            await generator.aclose()
        assert text == "Hello from the fake upstream."
        assert usage == [{"prompt_tokens": 9, "completion_tokens": 6}]
        sent = fake.calls[0]
        assert sent["stream"] is True and sent["model"] == "upstream-model" and sent["max_tokens"] == 20
        assert sent["stop"] == ["\n\n"] and sent["temperature"] == 0.5
        assert fake.auth == ["Bearer sk-test"]

    async def test_retries_429_and_5xx_then_succeeds(self, sleeps: VirtualSleep) -> None:
        """429 (with Retry-After) and 5xx before the first token are retried, 5xx after an exponential backoff
        with jitter: attempt n waits between half and all of min(max, base * 2^(n-1))."""
        fake = FakeOpenAI(script=["429", "500", "503"], retry_after="0")
        with serve(fake.app()) as url:
            generator = make(url, max_attempts=4, backoff_base_s=1.0, backoff_max_s=3.0)
            text, _ = await collect(generator)
            await generator.aclose()
        assert text.startswith("Hello") and len(fake.calls) == 4
        assert sleeps.waits[0] == 0.0  # the 429 said "now"
        assert 1.0 <= sleeps.waits[1] <= 2.0  # attempt 2: ceiling min(3, 1 * 2)
        assert 1.5 <= sleeps.waits[2] <= 3.0  # attempt 3: ceiling min(3, 1 * 4), capped at 3
        assert len(sleeps.waits) == 3

    async def test_gives_up_after_bounded_attempts(self) -> None:
        """Persistent 5xx ends in a GenerationError naming the cause after max_attempts."""
        fake = FakeOpenAI(default="503")
        with serve(fake.app()) as url:
            generator = make(url, max_attempts=3)
            with pytest.raises(GenerationError, match=r"status 503.*3 attempts"):
                await collect(generator)
            await generator.aclose()
        assert len(fake.calls) == 3

    @pytest.mark.parametrize("header, waited", [("7", 7.0), ("2.5", 2.5), ("86400", 30.0), ("-5", 0.0)])
    async def test_honours_retry_after_up_to_a_cap(self, sleeps: VirtualSleep, header: str, waited: float) -> None:
        """The wait before retrying a 429 is the upstream's Retry-After in seconds, never more than
        max_retry_after_s (so a hostile or confused upstream cannot park a generation for a day)."""
        fake = FakeOpenAI(script=["429"], retry_after=header)
        with serve(fake.app()) as url:
            generator = make(url, max_retry_after_s=30.0)
            text, _ = await collect(generator)
            await generator.aclose()
        assert text.startswith("Hello") and len(fake.calls) == 2
        assert sleeps.waits == [waited]

    async def test_an_http_date_retry_after_falls_back_to_backoff(self, sleeps: VirtualSleep) -> None:
        """Retry-After as an HTTP date is not misread as seconds: the normal backoff applies."""
        fake = FakeOpenAI(script=["429"], retry_after="Wed, 21 Oct 2015 07:28:00 GMT")
        with serve(fake.app()) as url:
            generator = make(url, backoff_base_s=2.0, backoff_max_s=8.0)
            await collect(generator)
            await generator.aclose()
        assert len(sleeps.waits) == 1 and 1.0 <= sleeps.waits[0] <= 2.0

    async def test_client_errors_are_not_retried(self) -> None:
        """A 400 is the caller's problem: one attempt, and the upstream's message in the error."""
        fake = FakeOpenAI(script=["400"])
        with serve(fake.app()) as url:
            generator = make(url)
            with pytest.raises(GenerationError, match="bad model name"):
                await collect(generator)
            await generator.aclose()
        assert len(fake.calls) == 1

    @pytest.mark.parametrize("behaviour", ["broken", "error", "short"])
    async def test_broken_upstream_streams_fail_the_generation(self, behaviour: str) -> None:
        """A dropped connection, an error event or a stream without [DONE] is a GenerationError."""
        fake = FakeOpenAI(script=[behaviour])
        with serve(fake.app()) as url:
            generator = make(url)
            with pytest.raises(GenerationError):
                await collect(generator)
            await generator.aclose()
        assert len(fake.calls) == 1  # never retried once text may have reached a client

    async def test_timeout_is_a_generation_error(self) -> None:
        """An upstream that does not answer in time fails with a timeout message."""
        with serve(FakeOpenAI().app()) as url:
            generator = OpenAICompatGenerator(url + "/v1", timeout_s=0.000001, max_attempts=1)
            with pytest.raises(GenerationError, match=r"timed out|kept failing"):
                await collect(generator)
            await generator.aclose()

    def test_from_env_requires_a_base_url_and_reads_the_key(self) -> None:
        """Configuration comes from EAVES_OPENAI_*; a missing base URL is a clear error."""
        with pytest.raises(GenerationError, match="EAVES_OPENAI_BASE_URL"):
            OpenAICompatGenerator.from_env({})
        generator = OpenAICompatGenerator.from_env({"EAVES_OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
                                                    "EAVES_OPENAI_API_KEY": "sk-env", "EAVES_OPENAI_MODEL": "m"})
        assert generator._client.headers["authorization"] == "Bearer sk-env" and generator.model == "m"

    async def test_through_the_edge_a_broken_upstream_ends_the_stream_with_an_error(self) -> None:
        """Edge → origin → broken upstream: the client's stream ends with an error event, nothing cached."""
        fake = FakeOpenAI(script=["broken"])
        with serve(fake.app()) as url:
            rig = await make_rig(make(url))
            raw = await read_body(await rig.chat("break", stream=True))
            ok = await rig.chat("works", stream=True)
            ok_raw = await read_body(ok)
        events = sse_events(raw)
        assert json.loads(events[-1])["error"]["code"] == "generation_failed"
        assert sse_text(ok_raw) == "Hello from the fake upstream." and sse_events(ok_raw)[-1] == "[DONE]"
        names = [k.name for k in (await rig.kv.list(prefix="ans/")).keys]
        assert len(names) == 1  # only the complete answer
