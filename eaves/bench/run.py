"""One benchmark run: the emulator's cache hits beside the bare ceiling app, then the in-process hit path.

Both servers run one worker process pinned to the same CPU, wrk runs pinned to another, with the same
bodies, key scheme and concurrency; rounds alternate (ceiling, emulator, ceiling, ...) so that noise from
anything else on the machine lands on both. Only 127.0.0.1 is ever targeted.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eaves.bench import hitpath
from eaves.bench.wrk import WrkResult, run_wrk
from eaves.stack import Server, free_port, running_stack, stop_server, wait_healthy

HOST = "127.0.0.1"
CHAT = "/v1/chat/completions"
TARGET_THROUGHPUT_RATIO = 0.60
TARGET_P99_RATIO = 3.0
TARGET_HIT_PATH_P50_US = 150.0
PROMPTS = [
    "How do I reset my password?", "What are your opening hours?", "How do I cancel my subscription?",
    "Where is my order?", "Do you ship internationally?", "How do I change my email address?",
    "What payment methods do you accept?", "How do I contact support?", "Can I get a refund?",
    "How do I update my billing details?", "Is there a student discount?", "How do I delete my account?",
    "What is your privacy policy?", "How long does delivery take?", "Can I change my order?",
    "How do I enable two-factor authentication?",
]


class BenchError(RuntimeError):
    """The benchmark could not run as designed (no hits, a server failed); the message says why."""


@dataclass
class BenchConfig:
    duration_s: float = 10.0
    rounds: int = 3
    connections: int = 50
    iterations: int = 20_000
    data_dir: Path | None = None
    skip_http: bool = False


@dataclass
class BenchResult:
    config: BenchConfig
    server_cpus: set[int] | None
    load_cpus: set[int] | None
    ceiling: list[WrkResult] = field(default_factory=list)
    emulator: list[WrkResult] = field(default_factory=list)
    hit_path: dict[str, hitpath.Sample] = field(default_factory=dict)
    edge_metrics: dict[str, float] = field(default_factory=dict)

    def summary(self, runs: list[WrkResult]) -> dict[str, Any]:
        if not runs:
            return {}
        requests = sum(r.requests for r in runs)
        seconds = sum(r.duration_s for r in runs)
        return {"rps": round(requests / seconds, 1), "requests": requests, "seconds": round(seconds, 2),
                "p50_ms": round(statistics.median(r.p50_ms for r in runs), 3),
                "p99_ms": round(statistics.median(r.p99_ms for r in runs), 3),
                "errors": sum(r.socket_errors + r.non2xx for r in runs),
                "rounds": [r.as_dict() for r in runs]}

    def as_dict(self) -> dict[str, Any]:
        ceiling, emulator = self.summary(self.ceiling), self.summary(self.emulator)
        out: dict[str, Any] = {
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                        "server_cpus": sorted(self.server_cpus) if self.server_cpus else None,
                        "load_cpus": sorted(self.load_cpus) if self.load_cpus else None},
            "config": {"duration_s": self.config.duration_s, "rounds": self.config.rounds,
                       "connections": self.config.connections, "iterations": self.config.iterations,
                       "prompts": len(PROMPTS), "load_generator": "wrk -t1"},
            "ceiling": ceiling, "emulator": emulator,
            "hit_path": {name: sample.as_dict() for name, sample in self.hit_path.items()},
            "edge_metrics": self.edge_metrics,
            "targets": {"throughput_ratio": TARGET_THROUGHPUT_RATIO, "p99_ratio": TARGET_P99_RATIO,
                        "hit_path_p50_us": TARGET_HIT_PATH_P50_US},
        }
        met: dict[str, bool] = {}
        if ceiling and emulator:
            out["ratio"] = {"throughput": round(emulator["rps"] / ceiling["rps"], 3),
                            "p50": round(emulator["p50_ms"] / ceiling["p50_ms"], 2),
                            "p99": round(emulator["p99_ms"] / ceiling["p99_ms"], 2)}
            met["throughput_ratio"] = out["ratio"]["throughput"] >= TARGET_THROUGHPUT_RATIO
            met["p99_ratio"] = out["ratio"]["p99"] <= TARGET_P99_RATIO
        if "core/lmdb" in self.hit_path:
            met["hit_path_p50_us"] = self.hit_path["core/lmdb"].p50_us <= TARGET_HIT_PATH_P50_US
        out["meets_targets"] = met
        return out


def cpu_split() -> tuple[set[int] | None, set[int] | None]:
    """Servers on one CPU, the load generator on another, when the machine has two and allows pinning."""
    if not hasattr(os, "sched_getaffinity"):
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return {cpus[0]}, {cpus[1]}


@contextlib.contextmanager
def pinned(cpus: set[int] | None) -> Iterator[None]:
    """Run the block (and every process it starts) on ``cpus``; children inherit the affinity."""
    if not cpus:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def _post(url: str, key: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def create_bench_key(data_dir: Path) -> str:
    from edge.auth import KEY_PREFIX, api_key_hash, api_key_record, new_api_key
    from shared.kv_lmdb import LmdbKV, close_env
    from shared.local_stack import LocalStack

    stack = LocalStack(data_dir)
    stack.config()
    key = new_api_key()
    LmdbKV(stack.kv_path).put(KEY_PREFIX + api_key_hash(key),
                              api_key_record(hitpath.TENANT, hitpath.TIER, "bench", time.time()))
    close_env(stack.kv_path)
    return key


def warm(edge_url: str, key: str, bodies: list[bytes]) -> None:
    """Send each prompt once (a miss the origin answers and writes back), then check it is a hit."""
    for body in bodies:
        status, _, payload = _post(edge_url + CHAT, key, body)
        if status != 200:
            raise BenchError(f"warming the cache failed: {status} {payload[:300]!r}")
    for body in bodies:
        status, headers, payload = _post(edge_url + CHAT, key, body)
        if status != 200 or headers.get("x-edge-route") != "hit":
            raise BenchError(f"a warmed prompt was not a cache hit ({status}, x-edge-route="
                             f"{headers.get('x-edge-route')}): {payload[:300]!r}")


def scrape(url: str, headers: dict[str, str] | None = None) -> dict[str, float]:
    """The edge's own count of requests by route (from /metrics), to confirm what wrk measured were hits."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url + "/metrics", headers=headers or {}),
                                    timeout=10) as response:
            text = response.read().decode()
    except OSError:
        return {}
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("eaves_edge_requests_total{"):
            labels, _, value = line.partition("} ")
            route = labels.split('route="', 1)[1].split('"', 1)[0] if 'route="' in labels else "?"
            counts[route] = counts.get(route, 0.0) + float(value)
    return counts


def start_ceiling(key: str, log_dir: Path) -> Server:
    port = free_port(HOST)
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / "ceiling.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen([sys.executable, "-m", "eaves.bench.ceiling", "--host", HOST, "--port", str(port)],
                                   env={**os.environ, "EAVES_CEILING_KEY": key}, stdout=log_file,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    server = Server("ceiling", f"http://{HOST}:{port}", process, log_path)
    wait_healthy(server)
    return server


def run(config: BenchConfig, progress: Any = None) -> BenchResult:
    def say(message: str) -> None:
        if progress is not None:
            progress(message)

    server_cpus, load_cpus = cpu_split()
    result = BenchResult(config, server_cpus, load_cpus)
    with contextlib.ExitStack() as stack:
        if config.data_dir is None:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="eaves-bench-")))
        else:
            data_dir = config.data_dir
            data_dir.mkdir(parents=True, exist_ok=True)
        if not config.skip_http:
            _http_rounds(config, result, data_dir, server_cpus, load_cpus, say)
        say(f"in-process hit path: {config.iterations} iterations per layer")
        with pinned(server_cpus):
            result.hit_path = hitpath.run(config.iterations, data_dir / "hitpath")
    return result


def _http_rounds(config: BenchConfig, result: BenchResult, data_dir: Path, server_cpus: set[int] | None,
                 load_cpus: set[int] | None, say: Any) -> None:
    stack_dir = data_dir / "stack"
    key = create_bench_key(stack_dir)
    bodies = [hitpath.chat_body(prompt) for prompt in PROMPTS]
    env = {
        "EAVES_TIERS": json.dumps({hitpath.TIER: {"limit": 10**9, "window_s": 60}}),
        "EAVES_INTENT": "off",  # the hit path never classifies; the model would only slow the warm-up
        "EAVES_LOG": "off",  # per-request JSON logs cost a write each; see README "Performance"
        "EAVES_SIM_TTFT_MS": "1",
    }
    ceiling_key = secrets.token_urlsafe(32)
    with pinned(server_cpus):
        stack_cm = running_stack(stack_dir, env=env)
        stack = stack_cm.__enter__()
        try:
            ceiling = start_ceiling(ceiling_key, stack_dir / "logs")
        except BaseException:
            stack_cm.__exit__(*sys.exc_info())
            raise
    try:
        assert stack.edge is not None
        say(f"warming {len(bodies)} cached answers on {stack.edge.url}")
        warm(stack.edge.url, key, bodies)
        before = scrape(stack.edge.url, stack.operator_headers)
        # One short unmeasured pass each: connection set-up, allocator and page-cache warm-up.
        run_wrk(ceiling.url + CHAT, ceiling_key, bodies, duration_s=1, connections=config.connections,
                cpus=load_cpus)
        run_wrk(stack.edge.url + CHAT, key, bodies, duration_s=1, connections=config.connections, cpus=load_cpus)
        for round_no in range(1, config.rounds + 1):
            say(f"round {round_no}/{config.rounds}: ceiling, then emulator, {config.duration_s:g}s each")
            result.ceiling.append(run_wrk(ceiling.url + CHAT, ceiling_key, bodies, duration_s=config.duration_s,
                                          connections=config.connections, cpus=load_cpus))
            result.emulator.append(run_wrk(stack.edge.url + CHAT, key, bodies, duration_s=config.duration_s,
                                           connections=config.connections, cpus=load_cpus))
        after = scrape(stack.edge.url, stack.operator_headers)
        result.edge_metrics = {route: after[route] - before.get(route, 0.0) for route in after
                               if after[route] != before.get(route, 0.0)}
    finally:
        stop_server(ceiling)
        stack_cm.__exit__(None, None, None)


def format_table(data: dict[str, Any]) -> str:
    lines = []
    machine, config = data["machine"], data["config"]
    pin = (f"servers on CPU {machine['server_cpus']}, wrk on CPU {machine['load_cpus']}"
           if machine["server_cpus"] else "no CPU pinning")
    ceiling, emulator = data["ceiling"], data["emulator"]
    if ceiling and emulator:
        lines.append(f"HTTP, one worker process each, {pin}; wrk -t1 -c{config['connections']}, "
                     f"{config['rounds']} alternating rounds of {config['duration_s']:g}s")
        lines.append(f"| {'server':<40} | {'requests/s':>10} | {'p50 ms':>7} | {'p99 ms':>7} | {'errors':>6} |")
        lines.append(f"|{'-' * 42}|{'-' * 12}|{'-' * 9}|{'-' * 9}|{'-' * 8}|")
        for name, row in (("ceiling: bare Starlette + uvicorn", ceiling), ("eaves emulator, cache hit", emulator)):
            lines.append(f"| {name:<40} | {row['rps']:>10,.0f} | {row['p50_ms']:>7.2f} | {row['p99_ms']:>7.2f} | "
                         f"{row['errors']:>6} |")
        ratio = data["ratio"]
        lines.append(f"| {'emulator / ceiling':<40} | {ratio['throughput']:>9.0%} | {ratio['p50']:>6.2f}x | "
                     f"{ratio['p99']:>6.2f}x | {'':>6} |")
        if data.get("edge_metrics"):
            routes = ", ".join(f"{k}={v:,.0f}" for k, v in sorted(data["edge_metrics"].items()))
            lines.append(f"edge /metrics during the rounds: {routes}")
        lines.append("")
    lines.append(f"In-process hit path, {config['iterations']:,} iterations per layer (µs per request)")
    segment_names = ["auth", "ratelimit", "parse", "kv"]
    header = f"| {'layer':<36} | {'p50':>6} | {'p90':>6} | {'p99':>6} | " + \
        " | ".join(f"{s:>9}" for s in segment_names) + " | other |"
    lines.append(header)
    lines.append("|" + "|".join("-" * len(cell) for cell in header.split("|")[1:-1]) + "|")
    labels = {"core/memory": "EdgeApp.handle, in-memory ports", "core/lmdb": "EdgeApp.handle, LMDB ports",
              "core/memory/user": "same, request names its end user", "core/lmdb/user": "LMDB, names its end user",
              "asgi/lmdb": "ASGI app, LMDB, metrics on", "asgi/lmdb/no-metrics": "ASGI app, LMDB, metrics off",
              "asgi/lmdb/logs": "ASGI app, LMDB, metrics + JSON logs",
              "ceiling/asgi": "ceiling app (Starlette), same call"}
    for name, sample in data["hit_path"].items():
        segments = sample["segments_us"]
        if segments:
            other = f"{sample['p50_us'] - sum(segments.values()):>5.1f}"
            cells = " | ".join(f"{segments.get(s, 0.0):>9.1f}" for s in segment_names)
        else:
            other, cells = f"{'':>5}", " | ".join(f"{'-':>9}" for _ in segment_names)
        lines.append(f"| {labels.get(name, name):<36} | {sample['p50_us']:>6.1f} | {sample['p90_us']:>6.1f} | "
                     f"{sample['p99_us']:>6.1f} | {cells} | {other} |")
    lines.append("(segments: medians from Server-Timing; 'other' = p50 minus segments: request id, Timing, response "
                 "headers, observer, ASGI adapter)")
    met = data.get("meets_targets", {})
    if met:
        lines.append("targets: " + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in met.items()))
    return "\n".join(lines)
