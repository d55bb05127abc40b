"""The Cloudflare KV REST writer against a local server that checks the documented request shape."""

from __future__ import annotations

import asyncio
import base64

import pytest

from origin.kv_cloudflare import CloudflareKVWriter, KVWriteError
from origin.writeback import WriterConfigError, writer_from_env
from shared.kv import KVLimitError
from tests.servers import FakeCloudflareKV, serve

pytestmark = pytest.mark.integration


def make(url: str, fake: FakeCloudflareKV, **kwargs: object) -> CloudflareKVWriter:
    return CloudflareKVWriter(fake.account, fake.namespace, fake.token, api_base=url + "/client/v4",
                              flush_interval_s=0.02, backoff_base_s=0.01, backoff_max_s=0.05,
                              **kwargs)  # type: ignore[arg-type]


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
