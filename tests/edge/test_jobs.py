"""Async jobs: 202 with a job id at once, polled from the KV, scoped to the tenant."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from edge.auth import KEY_PREFIX, api_key_hash, api_key_record, new_api_key
from edge.http import EdgeRequest
from origin.generators.simulator import SimulatedGenerator
from shared.intent.routing import Intent, Route
from tests.helpers import Rig, make_rig, read_body


@dataclass(frozen=True)
class AsyncPolicy:
    version: str = "async-1"

    def route(self, intent: Intent, text: str = "") -> Route:
        return Route("async", ttl_s=600, reason="test")


async def poll(rig: Rig, url: str, timeout_s: float = 5.0) -> dict[str, object]:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        response = await rig.get(url)
        record = json.loads(await read_body(response))
        if record.get("status") != "queued" or asyncio.get_running_loop().time() > deadline:
            return record
        await asyncio.sleep(0.02)


class TestJobs:
    async def test_prefer_respond_async_gets_202_then_the_result(self) -> None:
        """A request asking for async gets 202 + job id at once; polling returns the completion."""
        rig = await make_rig(SimulatedGenerator(ttft_s=0.1))
        response = await rig.chat("long report please", headers={"prefer": "respond-async"})
        assert response.status == 202 and response.header("x-edge-route") == "async"
        accepted = json.loads(await read_body(response))
        assert accepted["status"] == "queued" and accepted["id"].startswith("job_")
        assert response.header("location") == accepted["url"] == f"/v1/jobs/{accepted['id']}"
        first = json.loads(await read_body(await rig.get(accepted["url"])))
        assert first["status"] == "queued"
        done = await poll(rig, accepted["url"])
        assert done["status"] == "succeeded"
        assert done["result"]["choices"][0]["message"]["content"].startswith("Simulated answer")  # type: ignore[index]
        # The result also landed under the answer key: the same question is now a hit.
        again = await rig.chat("long report please")
        assert again.header("x-edge-route") == "hit"

    async def test_policy_async_intent_becomes_a_job(self) -> None:
        """An intent the policy routes 'async' is answered 202 without the client asking."""
        rig = await make_rig(policy=AsyncPolicy())
        response = await rig.chat("anything")
        assert response.status == 202
        record = await poll(rig, json.loads(await read_body(response))["url"])
        assert record["status"] == "succeeded"

    async def test_failed_generation_marks_the_job_failed(self) -> None:
        """A job whose generation fails is recorded as failed with an error, not left queued."""
        rig = await make_rig(SimulatedGenerator(ttft_s=0.0, fail_rate=1.0))
        response = await rig.chat("fail", headers={"prefer": "respond-async"})
        record = await poll(rig, json.loads(await read_body(response))["url"])
        assert record["status"] == "failed" and record["error"]["code"] == "generation_failed"  # type: ignore[index]

    async def test_another_tenant_cannot_read_the_job(self) -> None:
        """Job records are scoped to the tenant: another tenant's key gets 404."""
        rig = await make_rig()
        url = json.loads(await read_body(await rig.chat("mine", headers={"prefer": "respond-async"})))["url"]
        other = new_api_key()
        await rig.kv.put(KEY_PREFIX + api_key_hash(other), api_key_record("intruder", "pro", "x", 0.0))
        response = await rig.edge.handle(EdgeRequest("GET", url, {"authorization": f"Bearer {other}"}))
        assert response.status == 404

    async def test_polling_needs_credentials_and_a_well_formed_id(self) -> None:
        """No key is 401; a malformed id is 404; POST is 405."""
        rig = await make_rig()
        assert (await rig.edge.handle(EdgeRequest("GET", "/v1/jobs/job_" + "0" * 32, {}))).status == 401
        assert (await rig.get("/v1/jobs/nope")).status == 404
        assert (await rig.get("/v1/jobs/job_" + "0" * 32)).status == 404
        post = await rig.edge.handle(EdgeRequest("POST", "/v1/jobs/x", {"authorization": f"Bearer {rig.api_key}"}))
        assert post.status == 405
