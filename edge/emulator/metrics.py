"""Prometheus ``/metrics`` for the emulator, correct across uvicorn worker processes.

Each worker counts in plain dicts (``edge.metrics``) and, about once a second and at shutdown, writes
its snapshot to ``<metrics dir>/edge-<pid>.json`` (write to a temporary file, then rename). A scrape,
answered by whichever worker the kernel picks, merges every file with its own live counts: counters
and histograms of finished workers stay in the sums (as prometheus_client's multiprocess mode does),
breaker states count only live workers. Other workers' counts are at most one flush interval old.

``eaves edge`` creates an empty metrics directory at each start (``EAVES_METRICS_DIR``); without one,
the emulator is taken to run in one process and exports its live counts alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from edge import metrics as edge_metrics
from edge.metrics import DURATION_BUCKETS, EdgeMetrics, hit_ratio, merge, origin_calls_saved

FLUSH_INTERVAL_S = 1.0
CONTENT_TYPE = CONTENT_TYPE_LATEST


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class MetricsExporter:
    def __init__(self, metrics: EdgeMetrics | None = None, directory: Path | None = None) -> None:
        self.metrics = metrics or edge_metrics.METRICS
        self.directory = directory
        self._written_generation = -1
        self._task: asyncio.Task[None] | None = None

    @property
    def _own_file(self) -> Path | None:
        return None if self.directory is None else self.directory / f"edge-{os.getpid()}.json"

    def flush(self) -> None:
        """Write this process's snapshot if anything changed since the last write."""
        path = self._own_file
        if path is None:
            return
        self.metrics.poll()
        if self.metrics.generation == self._written_generation:
            return
        generation = self.metrics.generation
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pid": os.getpid(), **self.metrics.snapshot()}))
        os.replace(tmp, path)
        self._written_generation = generation

    def snapshots(self) -> list[dict[str, Any]]:
        """Every worker's latest snapshot, this one's live."""
        own = {"pid": os.getpid(), **self.metrics.snapshot()}
        found = [own]
        if self.directory is not None and self.directory.is_dir():
            for path in sorted(self.directory.glob("edge-*.json")):
                if path == self._own_file:
                    continue
                try:
                    snap = json.loads(path.read_text())
                except (OSError, ValueError):
                    continue  # a file being replaced right now: its counts come with the next scrape
                if not _alive(int(snap.get("pid", 0))):
                    snap["breakers"] = {}
                found.append(snap)
        return found

    def render(self) -> bytes:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(self))
        return generate_latest(registry)

    # ------------------------------------------------------------ background flushing

    def start(self) -> None:
        if self.directory is not None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._flush_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(OSError):
            self.flush()

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL_S)
            with contextlib.suppress(OSError):  # a full disk must not stop the worker; counts stay in memory
                self.flush()


class _Collector:
    def __init__(self, exporter: MetricsExporter) -> None:
        self._exporter = exporter

    def collect(self) -> Iterator[Metric]:
        snapshots = self._exporter.snapshots()
        merged = merge(snapshots)
        requests = merged["requests"]

        family = CounterMetricFamily("eaves_edge_requests", "Requests answered by the edge, by route "
                                     "(x-edge-route, or the refusal) and HTTP status.", labels=["route", "status"])
        for (route, status), count in sorted(requests.items()):
            family.add_metric([route, status], count)
        yield family

        histogram = HistogramMetricFamily("eaves_edge_request_duration_seconds", "Time from request to response "
                                          "start inside the edge (streams: to the first byte), by route.",
                                          labels=["route"])
        bounds = [f"{b:g}" for b in DURATION_BUCKETS] + ["+Inf"]
        for route, values in sorted(merged["durations"].items()):
            cumulative, running = [], 0.0
            for bound, count in zip(bounds, values[:-1], strict=True):
                running += count
                cumulative.append((bound, running))
            histogram.add_metric([route], cumulative, sum_value=values[-1])
        yield histogram

        seconds = CounterMetricFamily("eaves_edge_segment_seconds", "Time spent per Server-Timing segment "
                                      "(auth, ratelimit, parse, kv, classify, origin), summed.", labels=["segment"])
        counts = CounterMetricFamily("eaves_edge_segments", "Requests that ran each Server-Timing segment.",
                                     labels=["segment"])
        for name, (count, total) in sorted(merged["segments"].items()):
            seconds.add_metric([name], total)
            counts.add_metric([name], count)
        yield seconds
        yield counts

        yield GaugeMetricFamily("eaves_edge_cache_hit_ratio", "Share of KV-decided requests answered from the KV "
                                "(hit + stale) / (hit + stale + miss), since the edge started.",
                                value=hit_ratio(requests))
        yield CounterMetricFamily("eaves_edge_origin_calls_saved", "Requests the edge answered without calling "
                                  "the origin (hit, stale, edge answer, blocked).",
                                  value=origin_calls_saved(requests))

        fallbacks = CounterMetricFamily("eaves_edge_fallbacks", "Fallback answers served because the origin "
                                        "was slow, down or broken, by reason.", labels=["reason"])
        for reason, count in sorted(merged["fallbacks"].items()):
            fallbacks.add_metric([reason], count)
        yield fallbacks

        breakers = GaugeMetricFamily("eaves_edge_breaker_state", "Worker processes whose circuit breaker is in "
                                     "each state.", labels=["breaker", "state"])
        for (name, state), count in sorted(merged["breakers"].items()):
            breakers.add_metric([name, state], count)
        yield breakers
        yield GaugeMetricFamily("eaves_edge_worker_processes", "Worker processes whose counts are in these sums.",
                                value=len(snapshots))


def exporter_from_env(environ: dict[str, str]) -> MetricsExporter | None:
    """The exporter the emulator runs with: off with EAVES_METRICS=off, per-worker files with EAVES_METRICS_DIR."""
    if environ.get("EAVES_METRICS", "on").lower() in ("off", "0", "false", "no"):
        return None
    directory = environ.get("EAVES_METRICS_DIR")
    return MetricsExporter(directory=Path(directory) if directory else None)


def reset_directory(directory: Path) -> None:
    """Empty the metrics directory: done once per server start, before any worker exists."""
    directory.mkdir(parents=True, exist_ok=True)
    for path in directory.iterdir():
        if path.is_file() and path.name.startswith("edge-"):
            path.unlink(missing_ok=True)
