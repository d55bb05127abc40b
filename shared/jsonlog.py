"""JSON log lines, one per request, as the edge and the origin both write them.

Fields are chosen so a request can be followed from edge to origin by ``request_id``; they never
include credentials, prompts or answers. Lines go straight to a stream (no ``logging`` machinery:
a request-path log line must cost a few microseconds, not tens).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
# A JSON string literal, quotes included: the C encoder's own escaping, ~0.1 µs.
quote: Callable[[str], str] = json.encoder.encode_basestring


def log_line(fields: dict[str, Any]) -> str:
    return _dumps(fields) + "\n"


class JsonLineWriter:
    """Writes one JSON object per line to ``stream`` (stdout by default), stamped with the time."""

    def __init__(self, service: str, stream: TextIO | None = None, clock: Callable[[], float] = time.time) -> None:
        self.service = service
        self._stream = stream
        self._clock = clock

    def write(self, fields: dict[str, Any]) -> None:
        record = {"ts": round(self._clock(), 6), "service": self.service, **fields}
        self.emit(log_line(record))

    def emit(self, line: str) -> None:
        """Write one ready-made line (see ``edge.logs`` for a hot path that formats its own)."""
        try:  # noqa: SIM105 -- contextlib.suppress costs more, and this runs once per request
            (self._stream or sys.stdout).write(line)
        except (OSError, ValueError):
            pass  # a closed or full log stream must never fail a request

    def now(self) -> float:
        return self._clock()
