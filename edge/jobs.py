"""Async jobs at the edge: accept (202 + job id) by forwarding with a signed job header, and answer
polls from the KV.

    POST /v1/chat/completions   with ``Prefer: respond-async`` (RFC 7240), or an intent the policy
                                routes ``async`` → 202 {"id": "job_…", "status": "queued"} + Location
    GET  /v1/jobs/{id}          authenticated; reads job/<caller's tenant>/<id> only → 200 record | 404

The origin writes the record (queued, then succeeded with the completion or failed), so a job
survives the edge restarting and can be polled through any edge that reads the same KV.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

from edge import errors
from edge.http import EdgeResponse, json_response
from edge.ports import KVStore
from shared.jobs import job_key, valid_job_id

JOBS_PATH = "/v1/jobs/"


def wants_async(headers: Mapping[str, str]) -> bool:
    return any(token.strip().lower() == "respond-async" for token in headers.get("prefer", "").split(","))


def new_job_id() -> str:
    return "job_" + os.urandom(16).hex()


async def job_status(kv: KVStore, tenant: str, path: str) -> EdgeResponse:
    job_id = path[len(JOBS_PATH):]
    if not valid_job_id(job_id):
        raise errors.NotFound(f"no job {job_id!r}: job ids look like job_<32 hex digits>", code="job_not_found")
    entry = await kv.get(job_key(tenant, job_id))
    if entry is None:
        # Another tenant's job is indistinguishable from none at all.
        raise errors.NotFound(f"no job {job_id} for this tenant (finished jobs are kept for 24 hours)",
                              code="job_not_found")
    try:
        record = json.loads(entry.value)
    except ValueError as exc:
        raise errors.UpstreamError("the job record is unreadable", code="job_record_corrupt") from exc
    return json_response(200, record, [("cache-control", "no-store")])


def accepted(job_id: str, body: bytes) -> EdgeResponse:
    """The 202 for the client, from the origin's acceptance."""
    try:
        record = json.loads(body)
    except ValueError:
        record = {"id": job_id, "object": "job", "status": "queued"}
    record["url"] = JOBS_PATH + job_id
    return json_response(202, record, [("location", JOBS_PATH + job_id), ("retry-after", "1")])
