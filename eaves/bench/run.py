"""One benchmark run: what the load generator can do, the bare ceiling, and the emulator's cache hits with
observability on and off, then the in-process hit path.

The run cannot flatter the emulator by measuring wrk instead of the servers:

1. **The generator first.** wrk runs with the same script, connections and CPU against a static responder
   (``eaves.bench.responder``): the requests per second it reaches there are the most this wrk can measure.
   A server whose figure comes within 20 % of it is flagged ``generator_bound`` (in the table and in
   ``--json``): its real capacity is unknown, and a share of it means nothing. wrk's own CPU time per request
   is reported for every run.
2. **A static script.** wrk never calls Lua per request or per response (``eaves.bench.wrk``); the bodies
   rotate across wrk's threads.
3. **The same load, the same CPU, the same rounds.** Every server runs one worker process pinned to one CPU,
   wrk on another; rounds alternate (generator, ceiling, each emulator variant, again) so that noise from
   anything else on the machine lands on all of them. Each server's CPU time per request (from
   ``/proc/<pid>/stat``) is reported too: on a shared machine it is steadier than requests per second.
4. **Observability as users run it.** The emulator runs with its defaults (JSON logs and metrics on); the
   variants with logs off, metrics off and both off measure what each costs, in the same rounds.

Only 127.0.0.1 is ever targeted.
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
from eaves.stack import Server, Stack, free_port, running_stack, stop_server, wait_healthy

HOST = "127.0.0.1"
CHAT = "/v1/chat/completions"
TARGET_THROUGHPUT_RATIO = 0.70
TARGET_P99_RATIO = 1.5
TARGET_OBSERVABILITY_COST = 0.10  # logs and metrics on vs off, share of throughput
TARGET_HIT_PATH_P50_US = 40.0  # the emulator's ASGI app in-process (LMDB, metrics on)
GENERATOR_MARGIN = 0.20  # a server within 20 % of the generator's own capacity was measuring the generator
PROMPTS = [
    "How do I reset my password?", "What are your opening hours?", "How do I cancel my subscription?",
    "Where is my order?", "Do you ship internationally?", "How do I change my email address?",
    "What payment methods do you accept?", "How do I contact support?", "Can I get a refund?",
    "How do I update my billing details?", "Is there a student discount?", "How do I delete my account?",
    "What is your privacy policy?", "How long does delivery take?", "Can I change my order?",
    "How do I enable two-factor authentication?",
]
# Emulator variants: name -> settings on top of its defaults (JSON logs and metrics on).
VARIANTS: dict[str, dict[str, str]] = {
    "defaults": {},
    "logs_off": {"EAVES_LOG": "off"},
    "metrics_off": {"EAVES_METRICS": "off"},
    "off": {"EAVES_LOG": "off", "EAVES_METRICS": "off"},
}
DEFAULT_VARIANTS = ("defaults", "logs_off", "metrics_off", "off")


class BenchError(RuntimeError):
    """The benchmark could not run as designed (no hits, a server failed); the message says why."""


@dataclass
class BenchConfig:
    duration_s: float = 10.0
    rounds: int = 3
    connections: int = 32
    iterations: int = 20_000
    data_dir: Path | None = None
    skip_http: bool = False
    bodies: int = 4
    variants: tuple[str, ...] = DEFAULT_VARIANTS


@dataclass
class Run:
    """One wrk run against one server, with the server's CPU time over it."""

    wrk: WrkResult
    server_cpu_s: float

    def as_dict(self) -> dict[str, Any]:
        return {**self.wrk.as_dict(), "server_cpu_s": round(self.server_cpu_s, 3)}


@dataclass
class BenchResult:
    config: BenchConfig
    server_cpus: set[int] | None
    load_cpus: set[int] | None
    generator: list[Run] = field(default_factory=list)
    ceiling: list[Run] = field(default_factory=list)
    emulator: dict[str, list[Run]] = field(default_factory=dict)
    hit_path: dict[str, hitpath.Sample] = field(default_factory=dict)
    edge_metrics: dict[str, float] = field(default_factory=dict)
    load_average: tuple[float, float, float] | None = None

    @staticmethod
    def summary(runs: list[Run]) -> dict[str, Any]:
        if not runs:
            return {}
        requests = sum(r.wrk.requests for r in runs)
        seconds = sum(r.wrk.duration_s for r in runs)
        server_cpu = sum(r.server_cpu_s for r in runs)
        wrk_cpu = sum(r.wrk.wrk_cpu_s for r in runs)
        return {"rps": round(requests / seconds, 1), "requests": requests, "seconds": round(seconds, 2),
                "p50_ms": round(statistics.median(r.wrk.p50_ms for r in runs), 3),
                "p99_ms": round(statistics.median(r.wrk.p99_ms for r in runs), 3),
                "errors": sum(r.wrk.socket_errors + r.wrk.non2xx for r in runs),
                "server_cpu_us_per_request": round(server_cpu * 1e6 / requests, 1) if requests else None,
                "wrk_cpu_us_per_request": round(wrk_cpu * 1e6 / requests, 2) if requests else None,
                "wrk_cpu_share": round(wrk_cpu / seconds, 3) if seconds else None,
                "rounds": [r.as_dict() for r in runs]}

    def as_dict(self) -> dict[str, Any]:
        generator, ceiling = self.summary(self.generator), self.summary(self.ceiling)
        emulators = {name: self.summary(runs) for name, runs in self.emulator.items()}
        emulator = emulators.get("defaults", {})
        capacity = generator.get("rps")
        for row in (ceiling, *emulators.values()):
            if row and capacity:
                row["share_of_generator"] = round(row["rps"] / capacity, 3)
                row["generator_bound"] = row["rps"] >= (1 - GENERATOR_MARGIN) * capacity
        out: dict[str, Any] = {
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                        "server_cpus": sorted(self.server_cpus) if self.server_cpus else None,
                        "load_cpus": sorted(self.load_cpus) if self.load_cpus else None,
                        "load_average_before": self.load_average},
            "config": {"duration_s": self.config.duration_s, "rounds": self.config.rounds,
                       "connections": self.config.connections, "iterations": self.config.iterations,
                       "bodies": self.config.bodies, "variants": list(self.config.variants),
                       "load_generator": "wrk, static script (no per-request or per-response Lua), "
                                         "one thread per body"},
            "generator": generator, "ceiling": ceiling, "emulator": emulator,
            "emulator_variants": {name: row for name, row in emulators.items() if name != "defaults"},
            "generator_bound": any(row.get("generator_bound", False) for row in (ceiling, *emulators.values())),
            "hit_path": {name: sample.as_dict() for name, sample in self.hit_path.items()},
            "edge_metrics": self.edge_metrics,
            "targets": {"throughput_ratio": TARGET_THROUGHPUT_RATIO, "p99_ratio": TARGET_P99_RATIO,
                        "observability_cost": TARGET_OBSERVABILITY_COST, "hit_path_p50_us": TARGET_HIT_PATH_P50_US,
                        "generator_margin": GENERATOR_MARGIN},
        }
        met: dict[str, bool] = {}
        if ceiling and emulator:
            out["ratio"] = {"throughput": round(emulator["rps"] / ceiling["rps"], 3),
                            "p50": round(emulator["p50_ms"] / ceiling["p50_ms"], 2),
                            "p99": round(emulator["p99_ms"] / ceiling["p99_ms"], 2),
                            "cpu_per_request": round(ceiling["server_cpu_us_per_request"]
                                                     / emulator["server_cpu_us_per_request"], 3)}
            met["throughput_ratio"] = out["ratio"]["throughput"] >= TARGET_THROUGHPUT_RATIO
            met["p99_ratio"] = out["ratio"]["p99"] <= TARGET_P99_RATIO
        if emulator and emulators.get("off"):
            off = emulators["off"]
            cost = {"throughput": round(1 - emulator["rps"] / off["rps"], 3),
                    "cpu_us_per_request": round(emulator["server_cpu_us_per_request"]
                                                - off["server_cpu_us_per_request"], 1)}
            for name in ("logs_off", "metrics_off"):
                if emulators.get(name):
                    part = emulators[name]
                    cost[name.replace("_off", "") + "_cpu_us_per_request"] = round(
                        emulator["server_cpu_us_per_request"] - part["server_cpu_us_per_request"], 1)
            out["observability_cost"] = cost
            met["observability_cost"] = cost["throughput"] <= TARGET_OBSERVABILITY_COST
        if "asgi/lmdb" in self.hit_path:
            met["hit_path_p50_us"] = self.hit_path["asgi/lmdb"].p50_us <= TARGET_HIT_PATH_P50_US
        if out["generator_bound"]:
            met["not_generator_bound"] = False
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


def _start(name: str, module: str, args: list[str], log_dir: Path, env: dict[str, str] | None = None) -> Server:
    port = free_port(HOST)
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen([sys.executable, "-m", module, "--host", HOST, "--port", str(port), *args],
                                   env={**os.environ, **(env or {})}, stdout=log_file, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    server = Server(name, f"http://{HOST}:{port}", process, log_path)
    wait_healthy(server)
    return server


def start_ceiling(key: str, log_dir: Path) -> Server:
    return _start("ceiling", "eaves.bench.ceiling", [], log_dir, {"EAVES_CEILING_KEY": key})


def start_responder(log_dir: Path) -> Server:
    return _start("responder", "eaves.bench.responder", [], log_dir)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far (Linux /proc; 0 where there is none)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(server: Server, key: str, bodies: list[bytes], config: BenchConfig, load_cpus: set[int] | None,
            duration_s: float | None = None) -> Run:
    before = cpu_seconds(server.process.pid)
    result = run_wrk(server.url + CHAT, key, bodies, duration_s=duration_s or config.duration_s,
                     connections=config.connections, cpus=load_cpus)
    return Run(result, cpu_seconds(server.process.pid) - before)


def run(config: BenchConfig, progress: Any = None) -> BenchResult:
    def say(message: str) -> None:
        if progress is not None:
            progress(message)

    server_cpus, load_cpus = cpu_split()
    result = BenchResult(config, server_cpus, load_cpus)
    with contextlib.suppress(OSError):
        result.load_average = os.getloadavg()
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
    unknown = [name for name in config.variants if name not in VARIANTS]
    if unknown or not config.variants:
        raise BenchError(f"unknown emulator variants {unknown}; choose from {', '.join(VARIANTS)}")
    bodies = [hitpath.chat_body(prompt) for prompt in PROMPTS[:max(1, min(config.bodies, len(PROMPTS)))]]
    base_env = {
        "EAVES_TIERS": json.dumps({hitpath.TIER: {"limit": 10**9, "window_s": 60}}),
        "EAVES_INTENT": "off",  # the hit path never classifies; the model would only slow the warm-up
        "EAVES_SIM_TTFT_MS": "1",
    }
    ceiling_key = secrets.token_urlsafe(32)
    with contextlib.ExitStack() as servers:
        stacks: dict[str, tuple[Stack, str]] = {}
        with pinned(server_cpus):
            responder = start_responder(data_dir / "logs")
            servers.callback(stop_server, responder)
            ceiling = start_ceiling(ceiling_key, data_dir / "logs")
            servers.callback(stop_server, ceiling)
            for name in config.variants:
                # One stack per variant: settings are per process, and each edge owns its metrics directory.
                stack_dir = data_dir / f"stack-{name}"
                key = create_bench_key(stack_dir)
                stack = servers.enter_context(running_stack(stack_dir, env={**base_env, **VARIANTS[name]}))
                stacks[name] = (stack, key)
        for name, (stack, key) in stacks.items():
            assert stack.edge is not None
            say(f"warming {len(bodies)} cached answers on the emulator ({name}) at {stack.edge.url}")
            warm(stack.edge.url, key, bodies)
        defaults = stacks.get("defaults")
        before = scrape(defaults[0].edge.url, defaults[0].operator_headers) if defaults and defaults[0].edge else {}
        targets: list[tuple[str, Server, str]] = [("generator", responder, "any"), ("ceiling", ceiling, ceiling_key)]
        targets += [(name, stack.edge, key) for name, (stack, key) in stacks.items() if stack.edge is not None]
        # One short unmeasured pass each: connection set-up, allocator and page-cache warm-up.
        for _, server, key in targets:
            measure(server, key, bodies, config, load_cpus, duration_s=1)
        for round_no in range(1, config.rounds + 1):
            say(f"round {round_no}/{config.rounds}: {', '.join(name for name, _, _ in targets)}, "
                f"{config.duration_s:g}s each")
            for name, server, key in targets:
                run_ = measure(server, key, bodies, config, load_cpus)
                if name == "generator":
                    result.generator.append(run_)
                elif name == "ceiling":
                    result.ceiling.append(run_)
                else:
                    result.emulator.setdefault(name, []).append(run_)
        if defaults and defaults[0].edge:
            after = scrape(defaults[0].edge.url, defaults[0].operator_headers)
            result.edge_metrics = {route: after[route] - before.get(route, 0.0) for route in after
                                   if after[route] != before.get(route, 0.0)}


LABELS = {"generator": "generator: wrk vs a static responder", "ceiling": "ceiling: bare Starlette + uvicorn",
          "defaults": "eaves emulator, hit (logs + metrics on)", "logs_off": "  the same, JSON logs off",
          "metrics_off": "  the same, metrics off", "off": "  the same, logs and metrics off"}


def format_table(data: dict[str, Any]) -> str:
    lines = []
    machine, config = data["machine"], data["config"]
    pin = (f"servers on CPU {machine['server_cpus']}, wrk on CPU {machine['load_cpus']}"
           if machine["server_cpus"] else "no CPU pinning")
    ceiling, emulator = data["ceiling"], data["emulator"]
    if ceiling and emulator:
        load = machine.get("load_average_before")
        lines.append(f"HTTP, one worker process each, {pin}; wrk -c{config['connections']}, static script, "
                     f"{config['bodies']} bodies (one per wrk thread), {config['rounds']} alternating rounds of "
                     f"{config['duration_s']:g}s" + (f"; load average {load[0]:.1f} at the start" if load else ""))
        header = (f"| {'server':<42} | {'requests/s':>10} | {'p50 ms':>7} | {'p99 ms':>7} | {'errors':>6} | "
                  f"{'CPU µs/req':>10} | {'wrk CPU µs/req':>14} | {'of generator':>12} |")
        lines.append(header)
        lines.append("|" + "|".join("-" * len(cell) for cell in header.split("|")[1:-1]) + "|")
        rows = [("generator", data["generator"]), ("ceiling", ceiling), ("defaults", emulator),
                *data.get("emulator_variants", {}).items()]
        for name, row in rows:
            if not row:
                continue
            share = row.get("share_of_generator")
            flag = " GENERATOR-BOUND" if row.get("generator_bound") else ""
            share_cell = f"{share:.0%}{flag}" if share is not None else "-"
            lines.append(f"| {LABELS.get(name, name):<42} | {row['rps']:>10,.0f} | {row['p50_ms']:>7.2f} | "
                         f"{row['p99_ms']:>7.2f} | {row['errors']:>6} | {row['server_cpu_us_per_request']:>10.1f} | "
                         f"{row['wrk_cpu_us_per_request']:>14.2f} | {share_cell:>12} |")
        ratio = data["ratio"]
        lines.append(f"emulator (defaults) / ceiling: throughput {ratio['throughput']:.0%}, p50 {ratio['p50']:.2f}x, "
                     f"p99 {ratio['p99']:.2f}x, CPU per request {1 / ratio['cpu_per_request']:.2f}x")
        cost = data.get("observability_cost")
        if cost:
            parts = ", ".join(f"{k.replace('_cpu_us_per_request', '')} {v:+.1f}" for k, v in cost.items()
                              if k.endswith("_cpu_us_per_request") and k != "cpu_us_per_request")
            lines.append(f"logs + metrics on vs off: throughput {-cost['throughput']:+.1%}, CPU "
                         f"{cost['cpu_us_per_request']:+.1f} µs per request ({parts})")
        if data.get("generator_bound"):
            lines.append(f"WARNING: a server came within {GENERATOR_MARGIN:.0%} of what wrk reached against the static "
                         "responder: that figure measured wrk, not the server")
        if data.get("edge_metrics"):
            routes = ", ".join(f"{k}={v:,.0f}" for k, v in sorted(data["edge_metrics"].items()))
            lines.append(f"edge /metrics (defaults) during the rounds: {routes}")
        lines.append("")
    lines.append(f"In-process hit path, {config['iterations']:,} iterations per layer (µs per request)")
    segment_names = ["auth", "ratelimit", "parse", "kv"]
    header = f"| {'layer':<41} | {'p50':>6} | {'p90':>6} | {'p99':>6} | " + \
        " | ".join(f"{s:>9}" for s in segment_names) + " | other |"
    lines.append(header)
    lines.append("|" + "|".join("-" * len(cell) for cell in header.split("|")[1:-1]) + "|")
    labels = {"core/memory": "EdgeApp.handle, in-memory ports", "core/lmdb": "EdgeApp.handle, LMDB ports",
              "core/memory/user": "same, request names its end user", "core/lmdb/user": "LMDB, names its end user",
              "asgi/lmdb": "ASGI app, LMDB, metrics on", "asgi/lmdb/no-metrics": "ASGI app, LMDB, metrics off",
              "asgi/lmdb/logs": "ASGI app, LMDB, metrics + JSON logs",
              "asgi/lmdb/workers": "ASGI app, LMDB counters (N workers)",
              "http/lmdb": "uvicorn protocol + ASGI app, logs+metrics",
              "ceiling/asgi": "ceiling app (Starlette), same call",
              "ceiling/http": "ceiling app behind uvicorn protocol"}
    for name, sample in data["hit_path"].items():
        segments = sample["segments_us"]
        if segments:
            other = f"{sample['p50_us'] - sum(segments.values()):>5.1f}"
            cells = " | ".join(f"{segments.get(s, 0.0):>9.1f}" for s in segment_names)
        else:
            other, cells = f"{'':>5}", " | ".join(f"{'-':>9}" for _ in segment_names)
        lines.append(f"| {labels.get(name, name):<41} | {sample['p50_us']:>6.1f} | {sample['p90_us']:>6.1f} | "
                     f"{sample['p99_us']:>6.1f} | {cells} | {other} |")
    lines.append("(segments: medians from Server-Timing; 'other' = p50 minus segments: request id, Timing, response "
                 "headers, observer, ASGI adapter)")
    met = data.get("meets_targets", {})
    if met:
        lines.append("targets: " + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in met.items()))
    return "\n".join(lines)
