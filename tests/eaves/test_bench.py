"""`eaves bench` runs and emits its JSON keys (timings are printed, never asserted)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from tests.tiers import require_tool


def bench(*args: str) -> dict[str, object]:
    result = subprocess.run([sys.executable, "-m", "eaves.cli", "bench", "--json", *args], capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    data: dict[str, object] = json.loads(result.stdout)
    return data


def test_in_process_hit_path_emits_every_layer() -> None:
    """The in-process form reports p50/p99 and segments for every layer, with and without metrics and logs."""
    data = bench("--in-process-only", "--iterations", "300")
    hit_path = data["hit_path"]
    layers = {"core/memory", "core/lmdb", "core/memory/user", "core/lmdb/user", "asgi/lmdb", "asgi/lmdb/no-metrics",
              "asgi/lmdb/logs", "ceiling/asgi"}
    assert isinstance(hit_path, dict) and set(hit_path) == layers
    for name, sample in hit_path.items():
        if name == "ceiling/asgi":
            continue  # no Server-Timing there
        assert {"p50_us", "p99_us", "segments_us"} <= set(sample)
        assert {"auth", "ratelimit", "parse", "kv"} <= set(sample["segments_us"])


@pytest.mark.integration
def test_short_http_bench_emits_ratio() -> None:
    """A one-second round against both servers reports their figures and the ratio, with no errors."""
    require_tool("wrk", shutil.which("wrk") is not None, "wrk")
    data = bench("--duration", "1", "--rounds", "1", "--iterations", "200", "--connections", "8")
    assert {"ceiling", "emulator", "ratio", "hit_path", "meets_targets"} <= set(data)
    emulator = data["emulator"]
    assert isinstance(emulator, dict) and emulator["errors"] == 0 and emulator["requests"] > 0
    edge_metrics = data["edge_metrics"]
    assert isinstance(edge_metrics, dict) and set(edge_metrics) == {"hit"}
