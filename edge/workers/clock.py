"""Clock on Workers. ``time.time()`` and ``time.perf_counter()`` map onto ``Date.now()`` and
``performance.now()`` in Pyodide; on Workers both stand still while code runs and advance only across
I/O (a Spectre mitigation), so durations measure I/O waits, which is what Server-Timing reports."""

from __future__ import annotations

import time


class WorkersClock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.perf_counter()
