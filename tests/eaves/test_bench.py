"""`eaves bench` runs and emits its JSON keys (timings are printed, never asserted)."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import ClassVar

import pytest

from eaves.bench.responder import StaticProtocol
from eaves.bench.run import BenchConfig, BenchResult, Run, format_table
from eaves.bench.wrk import SCRIPT, WrkResult, run_wrk
from eaves.stack import free_port
from tests.tiers import require_tool


def bench(*args: str) -> dict[str, object]:
    result = subprocess.run([sys.executable, "-m", "eaves.cli", "bench", "--json", *args], capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    data: dict[str, object] = json.loads(result.stdout)
    return data


def wrk_result(rps: float, p99_ms: float = 10.0) -> WrkResult:
    return WrkResult(requests=int(rps * 10), duration_s=10.0, socket_errors=0, non2xx=0, p50_ms=p99_ms / 2,
                     p90_ms=p99_ms * 0.8, p99_ms=p99_ms, mean_ms=p99_ms / 2, max_ms=p99_ms * 2, wrk_cpu_s=1.0)


def result_with(generator_rps: float, ceiling_rps: float, emulator_rps: float, off_rps: float) -> BenchResult:
    result = BenchResult(BenchConfig(), {0}, {1})
    result.generator = [Run(wrk_result(generator_rps), 1.0)]
    result.ceiling = [Run(wrk_result(ceiling_rps), 5.0)]
    result.emulator = {"defaults": [Run(wrk_result(emulator_rps, 12.0), 5.0)], "off": [Run(wrk_result(off_rps), 5.0)]}
    return result


class TestVerdicts:
    def test_a_ceiling_near_the_generators_capacity_is_flagged(self) -> None:
        """A ceiling within 20 % of what wrk reached against the static responder is marked generator-bound,
        in the JSON and in the table, and the targets say so."""
        data = result_with(generator_rps=10_000, ceiling_rps=8_500, emulator_rps=6_000, off_rps=6_200).as_dict()
        assert data["ceiling"]["generator_bound"] is True and data["generator_bound"] is True
        assert data["emulator"]["generator_bound"] is False
        assert data["meets_targets"]["not_generator_bound"] is False
        assert "GENERATOR-BOUND" in format_table(data)

    def test_a_ceiling_well_below_the_generator_is_trusted(self) -> None:
        """With the generator far ahead, nothing is flagged and the ratios and observability cost are reported."""
        data = result_with(generator_rps=30_000, ceiling_rps=8_000, emulator_rps=6_000, off_rps=6_400).as_dict()
        assert data["generator_bound"] is False and "not_generator_bound" not in data["meets_targets"]
        assert data["ratio"]["throughput"] == 0.75 and data["ratio"]["p99"] == 1.2
        assert data["observability_cost"]["throughput"] == pytest.approx(1 - 6_000 / 6_400, abs=1e-3)
        assert data["meets_targets"] == {"throughput_ratio": True, "p99_ratio": True, "observability_cost": True}
        assert "GENERATOR-BOUND" not in format_table(data)


class RecordingProtocol(StaticProtocol):
    bodies: ClassVar[set[bytes]] = set()

    def data_received(self, data: bytes) -> None:
        self.bodies.add(data.rsplit(b"\r\n\r\n", 1)[-1])
        super().data_received(data)


@pytest.fixture
def recording_server() -> Iterator[str]:
    """A static responder on a background event loop that remembers every request body."""
    port = free_port()
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(loop.create_server(RecordingProtocol, "127.0.0.1", port))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}/v1/chat/completions"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        server.close()
        loop.run_until_complete(server.wait_closed())
        loop.close()


class TestWrkScript:
    def test_script_calls_no_lua_per_request_or_response(self) -> None:
        """The script defines neither request() nor response(): wrk then sends a prebuilt request from C."""
        assert not re.search(r"\b(request|response)\s*=|function\s+(wrk\.)?(request|response)\b", SCRIPT)

    @pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (scripts/setup installs it)")
    def test_every_body_is_sent(self, recording_server: str) -> None:
        """One body per wrk thread: the server sees each of them."""
        RecordingProtocol.bodies = set()
        bodies = [json.dumps({"n": i}).encode() for i in range(4)]
        result = run_wrk(recording_server, "key", bodies, duration_s=1, connections=8)
        assert result.threads == 4 and result.requests > 0 and result.non2xx == 0
        assert RecordingProtocol.bodies == set(bodies)


def test_in_process_hit_path_emits_every_layer() -> None:
    """The in-process form reports p50/p99 and segments for every layer, with and without metrics and logs."""
    data = bench("--in-process-only", "--iterations", "300")
    hit_path = data["hit_path"]
    layers = {"core/memory", "core/lmdb", "core/memory/user", "core/lmdb/user", "asgi/lmdb", "asgi/lmdb/no-metrics",
              "asgi/lmdb/logs", "asgi/lmdb/workers", "http/lmdb", "ceiling/asgi", "ceiling/http"}
    assert isinstance(hit_path, dict) and set(hit_path) == layers
    for name, sample in hit_path.items():
        if name.startswith("ceiling/"):
            continue  # no Server-Timing there
        assert {"p50_us", "p99_us", "segments_us"} <= set(sample)
        assert {"auth", "ratelimit", "parse", "kv"} <= set(sample["segments_us"])


@pytest.mark.integration
def test_short_http_bench_emits_ratio() -> None:
    """A one-second round against both servers reports their figures and the ratio, with no errors."""
    require_tool("wrk", shutil.which("wrk") is not None, "wrk")
    data = bench("--duration", "1", "--rounds", "1", "--iterations", "200", "--connections", "8")
    assert {"generator", "ceiling", "emulator", "emulator_variants", "ratio", "observability_cost", "hit_path",
            "meets_targets", "generator_bound"} <= set(data)
    assert set(data["emulator_variants"]) == {"logs_off", "metrics_off", "off"}
    assert isinstance(data["ceiling"], dict) and "generator_bound" in data["ceiling"]
    emulator = data["emulator"]
    assert isinstance(emulator, dict) and emulator["errors"] == 0 and emulator["requests"] > 0
    edge_metrics = data["edge_metrics"]
    assert isinstance(edge_metrics, dict) and set(edge_metrics) == {"hit"}


def test_the_command_offers_the_benchmarks_own_default_variants() -> None:
    """`eaves bench` spells the default variants itself (building the parser imports nothing heavy); they must
    stay the ones the benchmark runs by default."""
    from eaves.bench import run
    from eaves.commands import bench

    assert bench.DEFAULT_VARIANTS == run.DEFAULT_VARIANTS == run.BenchConfig().variants
