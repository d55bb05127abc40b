"""JSON log lines, one per request, as the edge and the origin both write them.

Fields are chosen so a request can be followed from edge to origin by ``request_id``; they never
include credentials, prompts or answers. Lines go straight to a stream (no ``logging`` machinery:
a request-path log line must cost a few microseconds, not tens).

``BufferedLineWriter`` (the emulator's edge log) writes lines in batches: one ``write`` per
``max_lines`` lines or per ``interval_s``, whichever comes first, instead of one per request. With
``PYTHONUNBUFFERED`` set, or a pipe, every per-request ``write`` is a system call, which cost ~20 µs of a
~100 µs cache hit here. ``flush()`` runs at a clean shutdown (the emulator's lifespan, and ``atexit`` as a
last resort), so a clean stop loses no line; a SIGKILL loses at most the last ``interval_s``.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO, TypeVar

Record = TypeVar("Record")

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

    def emit_later(self, render: Callable[[Record], str], record: Record) -> None:
        """Write ``render(record)``; a buffered writer renders it when it writes, with the rest of its batch."""
        self.emit(render(record))

    def now(self) -> float:
        return self._clock()

    def flush(self) -> None:
        """Nothing is held back here (each line is written as it comes); flush the stream itself."""
        try:  # noqa: SIM105 -- as in emit
            (self._stream or sys.stdout).flush()
        except (OSError, ValueError):
            pass


class BufferedLineWriter(JsonLineWriter):
    """A ``JsonLineWriter`` that batches its writes (see the module's docstring); same lines, same order."""

    def __init__(self, service: str, stream: TextIO | None = None, clock: Callable[[], float] = time.time, *,
                 max_lines: int = 256, interval_s: float = 0.2) -> None:
        super().__init__(service, stream, clock)
        self.max_lines = max_lines
        self.interval_s = interval_s
        # (render, record) to write as render(record); (None, line) for a ready line.
        self._pending: list[tuple[Callable[[Any], str] | None, Any]] = []
        self._timer: asyncio.TimerHandle | None = None
        atexit.register(self.flush)

    def emit(self, line: str) -> None:
        self._add(None, line)

    def emit_later(self, render: Callable[[Record], str], record: Record) -> None:
        # Rendering a batch at once, in one tight loop, costs less than the same lines rendered one per
        # request between everything else a request does (measured in the emulator: see README "Measured").
        self._add(render, record)

    def _add(self, render: Callable[[Any], str] | None, item: Any) -> None:
        pending = self._pending
        pending.append((render, item))
        if len(pending) >= self.max_lines:
            self.flush()
        elif len(pending) == 1:
            try:  # the first line of a batch: make sure it is written within interval_s
                self._timer = asyncio.get_running_loop().call_later(self.interval_s, self.flush)
            except RuntimeError:  # no event loop here: nothing would flush later, so write now
                self.flush()

    def flush(self) -> None:
        """Render and write every buffered line now, in one write."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        text = "".join([item if render is None else render(item) for render, item in pending])
        stream = self._stream or sys.stdout
        try:  # the same rule as emit: a broken log stream must never fail a request
            stream.write(text)
            stream.flush()
        except (OSError, ValueError):
            pass

    def close(self) -> None:
        """Flush, and stop flushing at exit (a writer that is thrown away before the process ends)."""
        self.flush()
        atexit.unregister(self.flush)
