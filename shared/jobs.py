"""Async jobs: the record both sides read and write, its KV key, and the headers that carry a job.

A job's record lives in the KV under a key scoped to the tenant, so the edge that accepted it, any
other edge, or the same edge after a restart can answer ``GET /v1/jobs/{id}`` from the KV alone:

    job/<tenant segment>/<id>  →  {"id", "object": "job", "status": queued|succeeded|failed,
                                   "created", "completed", "result": <chat completion>, "error": {...}}
"""

from __future__ import annotations

import json
import re
from typing import Any

from shared.cache_keys import tenant_segment

JOB_ID_HEADER = "x-eaves-job-id"  # edge → origin, signed
JOB_KEY_HEADER = "x-eaves-job-key"  # edge → origin, signed: where the origin writes the record
JOB_TTL_S = 24 * 3600  # how long a finished job's record (and result) can be fetched
STATUSES = ("queued", "succeeded", "failed")
_ID = re.compile(r"^job_[0-9a-f]{32}$")


def valid_job_id(job_id: str) -> bool:
    return bool(_ID.match(job_id))


def job_key(tenant: str, job_id: str) -> str:
    return f"job/{tenant_segment(tenant)}/{job_id}"


def job_record(job_id: str, status: str, created: float, *, completed: float | None = None,
               result: Any = None, error: dict[str, Any] | None = None) -> bytes:
    record: dict[str, Any] = {"id": job_id, "object": "job", "status": status, "created": int(created),
                              "completed": None if completed is None else int(completed)}
    if result is not None:
        record["result"] = result
    if error is not None:
        record["error"] = error
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode()
