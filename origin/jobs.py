"""Async jobs at the origin: accept at once (202), generate in the background, write the record.

The edge sends a signed job id and the job's KV key. The origin writes ``queued`` before it answers,
so a poll right after the 202 finds the job; when the (possibly coalesced) generation ends it writes
the answer under the cache key like any other, and the job record with the result or the error.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.responses import JSONResponse

from origin.flights import Flight
from origin.generators.base import GenerationError
from shared import wire
from shared.jobs import JOB_ID_HEADER, JOB_KEY_HEADER, JOB_TTL_S, job_record, valid_job_id
from shared.kv import KVError

if TYPE_CHECKING:
    from origin.app import OriginState

__all__ = ["JOB_ID_HEADER", "JobTicket", "accept"]

log = logging.getLogger("eaves.origin.jobs")


@dataclass(frozen=True, slots=True)
class JobTicket:
    job_id: str
    key: str

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> JobTicket | None:
        job_id, key = headers.get(JOB_ID_HEADER, ""), wire.from_header(headers.get(JOB_KEY_HEADER, ""))
        if not valid_job_id(job_id) or not key.startswith("job/") or not key.endswith("/" + job_id):
            return None
        return cls(job_id, key)


async def accept(state: OriginState, job: JobTicket, flight: Flight, headers: dict[str, str]) -> JSONResponse:
    created = state.clock()
    try:
        await state.writer.put(job.key, job_record(job.job_id, "queued", created), expiration_ttl=JOB_TTL_S)
    except (KVError, OSError) as exc:
        log.error("could not record job %s: %s", job.job_id, exc)
        return JSONResponse({"error": {"message": "the job could not be recorded; retry later", "type":
                                       "upstream_error", "code": "job_store_failed", "param": None}},
                            status_code=503, headers={"retry-after": "5"})
    state.totals.jobs_accepted += 1
    state.defer(_finish(state, job, flight, created))
    return JSONResponse({"id": job.job_id, "object": "job", "status": "queued", "created": int(created)},
                        status_code=202, headers=headers)


async def _finish(state: OriginState, job: JobTicket, flight: Flight, created: float) -> None:
    result: Any = None
    error: dict[str, Any] | None = None
    try:
        await flight.wait()
        result = json.loads(flight.body)
        status = "succeeded"
    except GenerationError as exc:
        state.totals.jobs_failed += 1
        status = "failed"
        error = {"message": f"the model failed: {exc}", "type": "upstream_error", "code": "generation_failed"}
    record = job_record(job.job_id, status, created, completed=state.clock(), result=result, error=error)
    try:
        await state.writer.put(job.key, record, expiration_ttl=JOB_TTL_S)
    except (KVError, OSError) as exc:
        log.error("could not record the outcome of job %s: %s", job.job_id, exc)
