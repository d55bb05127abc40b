"""The emulator's /metrics: per-worker snapshot files merged into Prometheus text."""

from __future__ import annotations

import json
from pathlib import Path

from edge.emulator.metrics import MetricsExporter, reset_directory
from edge.metrics import EdgeMetrics


def other_worker(directory: Path, pid: int, hits: int) -> None:
    """Write a snapshot as another worker process would."""
    other = EdgeMetrics()
    other.requests = {("hit", "200"): hits}
    other.breaker_state("origin", "open")
    (directory / f"edge-{pid}.json").write_text(json.dumps({"pid": pid, **other.snapshot()}))


class TestExporter:
    def test_merges_live_counts_with_other_workers_files(self, tmp_path: Path) -> None:
        """A scrape sums this worker's live counts with the files of the others, finished ones included."""
        mine = EdgeMetrics()
        mine.requests = {("hit", "200"): 2, ("miss", "200"): 2}
        exporter = MetricsExporter(mine, tmp_path)
        other_worker(tmp_path, 999_999_999, hits=4)  # no such process: a worker that has exited
        text = exporter.render().decode()
        assert 'eaves_edge_requests_total{route="hit",status="200"} 6.0' in text
        assert "eaves_edge_cache_hit_ratio 0.75" in text
        assert "eaves_edge_origin_calls_saved_total 6.0" in text
        assert "eaves_edge_breaker_state" in text and 'state="open"' not in text  # dead workers hold no state

    def test_flush_writes_only_on_change(self, tmp_path: Path) -> None:
        """A worker's file is rewritten only when its counts changed."""
        counts = EdgeMetrics()
        exporter = MetricsExporter(counts, tmp_path)
        counts.fallback("origin_down")
        exporter.flush()
        files = list(tmp_path.glob("edge-*.json"))
        assert len(files) == 1 and json.loads(files[0].read_text())["fallbacks"] == {"origin_down": 1}
        files[0].unlink()
        exporter.flush()
        assert not files[0].exists()

    def test_reset_empties_the_directory(self, tmp_path: Path) -> None:
        """Starting the emulator forgets the previous run's workers."""
        other_worker(tmp_path, 1, hits=1)
        reset_directory(tmp_path)
        assert list(tmp_path.iterdir()) == []
