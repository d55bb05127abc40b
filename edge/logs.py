"""One JSON log line per edge request: request id, route, status, duration, tenant — never keys or prompts.

Works on every runtime: it only needs something to write lines to (stdout locally, the Workers console
in production). The same request id goes to the origin as ``x-request-id``, so both sides' lines join up.
"""

from __future__ import annotations

from collections.abc import Callable

from edge.http import EdgeRequest, EdgeResponse
from edge.metrics import route_label
from edge.timing import Timing
from shared import wire
from shared.jsonlog import JsonLineWriter

Observer = Callable[[EdgeRequest, EdgeResponse, Timing, str], None]


class RequestLog:
    def __init__(self, writer: JsonLineWriter | None = None) -> None:
        self.writer = writer or JsonLineWriter("edge")

    def observe(self, request: EdgeRequest, response: EdgeResponse, timing: Timing, request_id: str) -> None:
        status = response.status
        fields = {
            "request_id": request_id,
            "method": request.method,
            "path": request.path,
            "status": status,
            "route": route_label(response.header(wire.ROUTE_HEADER), status),
            "intent": response.header(wire.INTENT_HEADER) or "",
            "tenant": timing.tenant,
            "duration_ms": round(timing.elapsed() * 1000, 3),
            "timing_ms": {name: round(seconds * 1000, 3) for name, seconds in timing.parts},
        }
        self.writer.write(fields)


def fan_out(*observers: Observer | None) -> Observer | None:
    """One observer that calls each given one in turn (None when none are given)."""
    chosen = [o for o in observers if o is not None]
    if not chosen:
        return None
    if len(chosen) == 1:
        return chosen[0]

    def observe(request: EdgeRequest, response: EdgeResponse, timing: Timing, request_id: str) -> None:
        for observer in chosen:
            observer(request, response, timing, request_id)

    return observe
