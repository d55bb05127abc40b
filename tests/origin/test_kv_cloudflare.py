"""The Cloudflare KV REST writer against a local server that checks the documented request shape."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time

import httpx
import pytest

from origin import kv_cloudflare
from origin.app import OriginState, build_app
from origin.generators.simulator import SimulatedGenerator
from origin.kv_cloudflare import CloudflareKVWriter, KVWriteError
from origin.writeback import WriterConfigError, writer_from_env
from shared import signing, wire
from shared.kv import KVLimitError
from tests.helpers import VirtualSleep
from tests.servers import FakeCloudflareKV, serve

SECRET = b"origin-secret-0123456789abcdef0123"

pytestmark = pytest.mark.integration


def make(url: str, fake: FakeCloudflareKV, **kwargs: object) -> CloudflareKVWriter:
    return CloudflareKVWriter(fake.account, fake.namespace, fake.token, api_base=url + "/client/v4",
                              flush_interval_s=0.02, backoff_base_s=0.01, backoff_max_s=0.05,
                              **kwargs)  # type: ignore[arg-type]


BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": "count me"}]}).encode()


def signed_headers() -> dict[str, str]:
    """What the edge sends for a cacheable miss: signed, with a write-back key and TTL."""
    headers = {"content-type": "application/json", wire.TENANT_HEADER: "acme", wire.CACHE_KEY_HEADER: "ans/acme/s/abc",
               wire.CACHE_TTL_HEADER: "600", wire.CACHE_STALE_HEADER: "0", wire.CACHE_INTENT_HEADER: "faq"}
    headers.update(signing.sign(SECRET, "POST", "/v1/chat/completions", BODY, time.time(), headers))
    return headers


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> VirtualSleep:
    """The writer's waits (flush interval, retries), recorded instead of slept."""
    virtual = VirtualSleep()
    monkeypatch.setattr(kv_cloudflare, "asyncio", virtual)
    return virtual


def configured(url: str, fake: FakeCloudflareKV, **environ: str) -> CloudflareKVWriter:
    """The writer as the origin builds it from its environment, defaults included."""
    return CloudflareKVWriter.from_env({"EAVES_CF_ACCOUNT_ID": fake.account, "EAVES_CF_KV_NAMESPACE_ID": fake.namespace,
                                        "EAVES_CF_API_TOKEN": fake.token, "EAVES_CF_API_BASE": url + "/client/v4",
                                        **environ})


class TestDocumentedDefaults:
    async def test_puts_within_50_ms_share_one_request(self, sleeps: VirtualSleep) -> None:
        """By default the writer waits 50 ms after the first put, and every put queued meanwhile goes in the
        same bulk request; a put after that flush starts the next batch."""
        fake = FakeCloudflareKV()
        with serve(fake.app()) as url:
            writer = configured(url, fake)
            await asyncio.gather(*(writer.put(f"k{i}", b"v", expiration_ttl=60) for i in range(5)))
            await writer.put("later", b"v", expiration_ttl=60)
            await writer.aclose()
        assert sleeps.waits == [0.05, 0.05]
        assert [sorted(p["key"] for p in r) for r in fake.requests] == [[f"k{i}" for i in range(5)], ["later"]]

    async def test_flush_interval_is_configurable(self, sleeps: VirtualSleep) -> None:
        """EAVES_CF_FLUSH_MS sets the batching wait."""
        fake = FakeCloudflareKV()
        with serve(fake.app()) as url:
            writer = configured(url, fake, EAVES_CF_FLUSH_MS="200")
            await writer.put("k", b"v", expiration_ttl=60)
            await writer.aclose()
        assert sleeps.waits == [0.2]

    async def test_at_most_10000_pairs_per_request(self, sleeps: VirtualSleep) -> None:
        """10,001 queued puts go in a request of 10,000 pairs (Cloudflare's documented bulk limit) and one of 1."""
        fake = FakeCloudflareKV()
        with serve(fake.app()) as url:
            writer = configured(url, fake)
            await asyncio.gather(*(writer.put(f"k{i}", b"v", expiration_ttl=60) for i in range(10_001)))
            await writer.aclose()
        assert fake.problems == [] and [len(r) for r in fake.requests] == [10_000, 1]
        assert len(fake.store) == 10_001

    @pytest.mark.parametrize("header, waited", [("9", 9.0), ("0.5", 0.5), ("86400", 300.0)])
    async def test_retry_after_is_honoured_and_capped(self, sleeps: VirtualSleep, header: str,
                                                      waited: float) -> None:
        """A 429's Retry-After (seconds) is the wait before the retry, capped at five minutes."""
        fake = FakeCloudflareKV(script=["429"], retry_after=header)
        with serve(fake.app()) as url:
            writer = configured(url, fake)
            await writer.put("k", b"v", expiration_ttl=60)
            await writer.aclose()
        assert sleeps.waits == [0.05, waited] and len(fake.requests) == 2 and "k" in fake.store

    async def test_a_write_that_still_fails_is_logged_and_counted_and_the_caller_keeps_its_answer(
            self, caplog: pytest.LogCaptureFixture) -> None:
        """Through the origin: a refused bulk write is logged, counted in the totals and /metrics, and the
        caller still gets its completion (the write is queued, so it says `queued`)."""
        fake = FakeCloudflareKV(script=["403"])
        with serve(fake.app()) as url:
            writer = CloudflareKVWriter(fake.account, fake.namespace, fake.token, api_base=url + "/client/v4",
                                        flush_interval_s=0.0)
            state = OriginState(generator=SimulatedGenerator(ttft_s=0.0, tokens_per_s=0.0), writer=writer,
                                secret=SECRET)
            with caplog.at_level(logging.ERROR):
                async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_app(state)),
                                             base_url="http://origin.test") as client:
                    response = await client.post("/v1/chat/completions", content=BODY, headers=signed_headers())
                await asyncio.gather(*state.background)
            await writer.aclose()
        assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"]
        assert response.headers["x-eaves-writeback"] == "queued"
        assert state.totals.writeback_failures == 1 and state.totals.writebacks == 0
        assert any("write-back of" in r.getMessage() and "403" in r.getMessage() for r in caplog.records)


class TestCloudflareKVWriter:
    async def test_concurrent_puts_go_in_one_documented_bulk_request(self) -> None:
        """Puts within the flush interval become one PUT of {key, value, expiration_ttl, metadata, base64}."""
        fake = FakeCloudflareKV()
        with serve(fake.app()) as url:
            writer = make(url, fake)
            await asyncio.gather(*(writer.put(f"ans/t/{i}", b'{"a":1}', expiration_ttl=3600, metadata={"f": i})
                                   for i in range(20)))
            await writer.aclose()
        assert fake.problems == []
        assert len(fake.requests) == 1 and len(fake.requests[0]) == 20
        assert fake.store["ans/t/3"] == {"key": "ans/t/3", "value": '{"a":1}', "base64": False,
                                         "expiration_ttl": 3600, "metadata": {"f": 3}}

    async def test_binary_values_are_sent_base64(self) -> None:
        """A value that is not UTF-8 goes base64-encoded with base64: true."""
        fake = FakeCloudflareKV()
        with serve(fake.app()) as url:
            writer = make(url, fake)
            await writer.put("bin", b"\xff\x00\xfe", expiration_ttl=60)
            await writer.aclose()
        pair = fake.store["bin"]
        assert pair["base64"] is True and base64.b64decode(pair["value"]) == b"\xff\x00\xfe"

    async def test_batches_split_at_the_pair_limit(self) -> None:
        """More pairs than one request may carry go in several requests."""
        fake = FakeCloudflareKV()
        with serve(fake.app()) as url:
            writer = make(url, fake, max_pairs=7)
            await asyncio.gather(*(writer.put(f"k{i}", b"v", expiration_ttl=60) for i in range(20)))
            await writer.aclose()
        assert [len(r) for r in fake.requests] == [7, 7, 6] and len(fake.store) == 20

    async def test_batches_split_at_the_size_limit(self) -> None:
        """A batch never exceeds the request size limit."""
        fake = FakeCloudflareKV()
        with serve(fake.app()) as url:
            writer = make(url, fake, max_request_bytes=1_500)
            await asyncio.gather(*(writer.put(f"k{i}", b"x" * 900, expiration_ttl=60) for i in range(4)))
            await writer.aclose()
        assert len(fake.requests) == 4

    async def test_retries_429_and_5xx_and_unsuccessful_keys(self) -> None:
        """429, 500 and keys reported unsuccessful are retried until written."""
        fake = FakeCloudflareKV(script=["429", "500", "partial"])
        with serve(fake.app()) as url:
            writer = make(url, fake)
            await asyncio.gather(writer.put("a", b"1", expiration_ttl=60), writer.put("b", b"2", expiration_ttl=60))
            await writer.aclose()
        assert set(fake.store) == {"a", "b"} and len(fake.requests) == 4
        assert [p["key"] for p in fake.requests[-1]] == ["a"]

    async def test_gives_up_with_a_clear_error(self) -> None:
        """Persistent 500s end in KVWriteError after max_attempts."""
        fake = FakeCloudflareKV(script=["500"] * 10)
        with serve(fake.app()) as url:
            writer = make(url, fake, max_attempts=3)
            with pytest.raises(KVWriteError, match="after 3 attempts"):
                await writer.put("a", b"1", expiration_ttl=60)
            await writer.aclose()
        assert len(fake.requests) == 3

    async def test_a_bad_token_is_not_retried_and_says_why(self) -> None:
        """A 403 names Cloudflare's error and the token permission to check."""
        fake = FakeCloudflareKV()
        with serve(fake.app()) as url:
            writer = CloudflareKVWriter(fake.account, fake.namespace, "wrong", api_base=url + "/client/v4",
                                        flush_interval_s=0.0)
            with pytest.raises(KVWriteError, match=r"403.*Authentication error.*Workers KV Storage Write"):
                await writer.put("a", b"1", expiration_ttl=60)
            await writer.aclose()

    async def test_workers_kv_limits_are_checked_before_sending(self) -> None:
        """A TTL under 60 s or an over-long key fails locally, as Workers KV would refuse it."""
        writer = CloudflareKVWriter("a", "n", "t", api_base="http://127.0.0.1:9")
        with pytest.raises(KVLimitError):
            await writer.put("k", b"v", expiration_ttl=30)
        with pytest.raises(KVLimitError):
            await writer.put("k" * 513, b"v", expiration_ttl=60)
        await writer.aclose()

    def test_selected_by_configuration(self, tmp_path: object) -> None:
        """EAVES_KV_WRITER=cloudflare needs the account, namespace and token variables."""
        with pytest.raises(WriterConfigError, match="EAVES_CF_API_TOKEN"):
            writer_from_env({"EAVES_KV_WRITER": "cloudflare", "EAVES_CF_ACCOUNT_ID": "a",
                             "EAVES_CF_KV_NAMESPACE_ID": "n"}, tmp_path)
        writer = writer_from_env({"EAVES_KV_WRITER": "cloudflare", "EAVES_CF_ACCOUNT_ID": "a",
                                  "EAVES_CF_KV_NAMESPACE_ID": "n", "EAVES_CF_API_TOKEN": "t"}, tmp_path)
        assert isinstance(writer, CloudflareKVWriter)
        assert writer.url == "https://api.cloudflare.com/client/v4/accounts/a/storage/kv/namespaces/n/bulk"
        asyncio.run(writer.aclose())
