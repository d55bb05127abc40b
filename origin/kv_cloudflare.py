"""The production KV writer: Workers KV through Cloudflare's REST API, in batches.

    PUT {api}/accounts/{account_id}/storage/kv/namespaces/{namespace_id}/bulk
    Authorization: Bearer <token>
    [{"key": ..., "value": ..., "expiration_ttl": ..., "metadata": {...}, "base64": false}, ...]

The bulk endpoint takes at most 10,000 pairs and 100 MB per request; its answer is the usual v4
envelope ``{"success", "errors", "messages", "result": {"successful_key_count", "unsuccessful_keys"}}``,
and unsuccessful keys "should be retried". Puts made within ``flush_interval_s`` of each other go in
one request; each caller waits for its own entry's outcome. 429 and 5xx are retried with exponential
backoff and jitter, honouring Retry-After, a bounded number of times.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from shared import kv as kv_rules
from shared.kv import KVError

log = logging.getLogger("eaves.origin.kv")

API_BASE = "https://api.cloudflare.com/client/v4"
MAX_PAIRS = 10_000
MAX_REQUEST_BYTES = 100_000_000


class KVWriteError(KVError):
    """Cloudflare refused or kept failing a write; the message carries its own error text."""


@dataclass
class _Pending:
    pair: dict[str, Any]
    size: int
    done: asyncio.Future[None]


class CloudflareKVWriter:
    name = "cloudflare"
    synchronous = False

    def __init__(self, account_id: str, namespace_id: str, api_token: str, *, api_base: str = API_BASE,
                 flush_interval_s: float = 0.05, max_attempts: int = 5, backoff_base_s: float = 0.5,
                 backoff_max_s: float = 30.0, timeout_s: float = 30.0, max_pairs: int = MAX_PAIRS,
                 max_request_bytes: int = MAX_REQUEST_BYTES, client: httpx.AsyncClient | None = None) -> None:
        for name, value in (("account id", account_id), ("namespace id", namespace_id), ("API token", api_token)):
            if not value:
                raise KVWriteError(f"the Cloudflare KV writer needs an {name}")
        self.url = f"{api_base.rstrip('/')}/accounts/{account_id}/storage/kv/namespaces/{namespace_id}/bulk"
        self._token = api_token
        self.flush_interval_s = flush_interval_s
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.max_pairs = max_pairs
        self.max_request_bytes = max_request_bytes
        self._client = client or httpx.AsyncClient(timeout=httpx.Timeout(timeout_s, connect=10.0))
        self._queue: list[_Pending] = []
        self._flusher: asyncio.Task[None] | None = None
        self.requests = 0

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> CloudflareKVWriter:
        from origin.writeback import WriterConfigError

        names = ("EAVES_CF_ACCOUNT_ID", "EAVES_CF_KV_NAMESPACE_ID", "EAVES_CF_API_TOKEN")
        missing = [name for name in names if not environ.get(name)]
        if missing:
            raise WriterConfigError(f"EAVES_KV_WRITER=cloudflare needs {', '.join(missing)} in the environment")
        return cls(environ[names[0]], environ[names[1]], environ[names[2]],
                   api_base=environ.get("EAVES_CF_API_BASE", API_BASE),
                   flush_interval_s=float(environ.get("EAVES_CF_FLUSH_MS", "50")) / 1000)

    async def put(self, key: str, value: bytes, *, expiration_ttl: int,
                  metadata: dict[str, Any] | None = None) -> None:
        kv_rules.check_key(key)
        kv_rules.check_value(value)
        kv_rules.check_metadata(metadata)
        kv_rules.check_ttl(expiration_ttl)
        try:
            pair: dict[str, Any] = {"key": key, "value": value.decode("utf-8"), "base64": False}
        except UnicodeDecodeError:
            pair = {"key": key, "value": base64.b64encode(value).decode("ascii"), "base64": True}
        pair["expiration_ttl"] = expiration_ttl
        if metadata is not None:
            pair["metadata"] = metadata
        size = len(json.dumps(pair, separators=(",", ":"), ensure_ascii=False).encode()) + 1
        pending = _Pending(pair, size, asyncio.get_running_loop().create_future())
        self._queue.append(pending)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush_soon())
        await asyncio.shield(pending.done)

    async def flush(self) -> None:
        """Send everything queued now."""
        while self._queue:
            batch = self._take_batch()
            await self._send_batch(batch)

    async def _flush_soon(self) -> None:
        await asyncio.sleep(self.flush_interval_s)
        await self.flush()

    def _take_batch(self) -> list[_Pending]:
        batch: list[_Pending] = []
        size = 2
        while self._queue and len(batch) < self.max_pairs:
            item = self._queue[0]
            if batch and size + item.size > self.max_request_bytes:
                break
            batch.append(self._queue.pop(0))
            size += item.size
        return batch

    async def _send_batch(self, batch: list[_Pending]) -> None:
        remaining = {item.pair["key"]: item for item in batch}
        try:
            for attempt in range(1, self.max_attempts + 1):
                pairs = [item.pair for item in remaining.values()]
                retry_after, failed = await self._send(pairs, attempt)
                if retry_after is None:
                    for key, item in list(remaining.items()):
                        if key not in failed:
                            _resolve(item.done)
                            del remaining[key]
                    if not remaining:
                        return
                    retry_after = self._backoff(attempt)
                if attempt < self.max_attempts:
                    await asyncio.sleep(retry_after)
            raise KVWriteError(f"Cloudflare KV did not accept {len(remaining)} key(s) after {self.max_attempts} "
                               f"attempts (first: {next(iter(remaining))!r})")
        except Exception as exc:
            error = exc if isinstance(exc, KVError) else KVWriteError(f"Cloudflare KV write failed: {exc}")
            for item in remaining.values():
                if not item.done.done():
                    item.done.set_exception(error)
            log.error("%s", error)

    async def _send(self, pairs: list[dict[str, Any]], attempt: int) -> tuple[float | None, set[str]]:
        """One request: (None, keys that failed) when answered, (seconds to wait, ∅) when it should be retried."""
        self.requests += 1
        try:
            response = await self._client.put(self.url, json=pairs,
                                              headers={"authorization": f"Bearer {self._token}"})
        except httpx.HTTPError as exc:
            log.warning("Cloudflare KV bulk write attempt %d failed: %s", attempt, exc)
            return self._backoff(attempt), set()
        if response.status_code == 429 or response.status_code >= 500:
            wait = _retry_after(response.headers.get("retry-after"))
            log.warning("Cloudflare KV answered %d (attempt %d)", response.status_code, attempt)
            return (wait if wait is not None else self._backoff(attempt)), set()
        try:
            envelope = response.json()
        except ValueError:
            envelope = {}
        if response.status_code >= 400 or not envelope.get("success", False):
            errors = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in envelope.get("errors") or [])
            hint = " (check EAVES_CF_API_TOKEN has Workers KV Storage Write)" if response.status_code in (401, 403) \
                else ""
            raise KVWriteError(f"Cloudflare KV refused the bulk write with status {response.status_code}: "
                               f"{errors or response.text[:200]}{hint}")
        result = envelope.get("result") or {}
        return None, set(result.get("unsuccessful_keys") or [])

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)  # "equal jitter": never hammer in lockstep

    async def aclose(self) -> None:
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        await self.flush()
        await self._client.aclose()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (RFC 9110 allows an HTTP date too; a date here means 'back off normally')."""
    if not value:
        return None
    try:
        return max(0.0, min(float(value), 300.0))
    except ValueError:
        return None
