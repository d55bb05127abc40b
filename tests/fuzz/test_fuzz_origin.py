"""Fuzz the origin app in-process: signed requests with any body and any x-eaves-* values the edge could
be made to sign, and unsigned junk. No 5xx from a healthy generator, every error is JSON with an error
object, and a refused request writes nothing to the KV."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from hypothesis import given
from hypothesis import strategies as st

from edge.memory import MemoryKV
from origin.app import OriginState, build_app
from origin.generators.simulator import SimulatedGenerator
from origin.writeback import KVAnswerWriter
from shared import signing, wire
from tests.fuzz.strategies import bodies, budget, header_value

SECRET = b"fuzz-origin-secret-0123456789abcdef"
PATH = "/v1/chat/completions"

signed_names = st.sampled_from([wire.TENANT_HEADER, wire.CACHE_KEY_HEADER, wire.CACHE_TTL_HEADER,
                                wire.CACHE_STALE_HEADER, wire.CACHE_KEEP_HEADER, wire.CACHE_INTENT_HEADER,
                                "x-eaves-job-id", "x-eaves-job-key", "x-request-id"])
signed_values = st.sampled_from(["acme", "ans/acme/abc", "60", "0", "-5", "99999999999", "job_" + "0" * 32,
                                 "job/acme/job_" + "0" * 32, "x"]) | header_value
signed_extra = st.dictionaries(signed_names, signed_values, max_size=5)


def sendable(headers: dict[str, str]) -> bool:
    try:
        signing.sign(SECRET, "POST", PATH, b"", 0, headers)
    except signing.SigningError:
        return False
    return True


@budget(200)
@given(bodies, signed_extra, st.sampled_from(["signed", "signed", "signed", "unsigned", "tampered", "replayed"]))
def test_origin_survives_anything(body: bytes, extra: dict[str, str], how: str) -> None:
    """Whatever the edge could sign (and what it could not), the origin answers cleanly."""
    extra = {k: v for k, v in extra.items() if v.isascii()}
    if not sendable(extra):  # the edge refuses to sign these (tests/edge/test_hostile.py): not the origin's input
        extra = {}

    async def run() -> None:
        kv = MemoryKV()
        state = OriginState(generator=SimulatedGenerator(ttft_s=0.0, tokens_per_s=0.0),
                            writer=KVAnswerWriter(kv), secret=SECRET)
        headers = {"content-type": "application/json", **extra}
        if how != "unsigned":
            headers.update(signing.sign(SECRET, "POST", PATH, body, time.time(), headers))
        if how == "tampered":
            headers[wire.TENANT_HEADER] = "someone-else"
        transport = httpx.ASGITransport(app=build_app(state))
        async with httpx.AsyncClient(transport=transport, base_url="http://o") as client:
            response = await client.post(PATH, content=body, headers=headers)
            if how == "replayed":
                before = kv.writes
                response = await client.post(PATH, content=body, headers=headers)
                assert response.status_code == 401 and kv.writes == before
        await asyncio.gather(*list(state.background), return_exceptions=True)
        assert response.status_code < 500 or response.json()["error"]["code"] in ("generation_failed",), \
            response.text[:300]
        if response.status_code >= 400:
            error: Any = response.json()["error"]
            assert isinstance(error, dict) and error["message"], response.text[:300]
            if how != "replayed":
                assert kv.writes == 0, "a refused request wrote to the KV"
        if how in ("unsigned", "tampered"):
            assert response.status_code == 401

    asyncio.run(run())
