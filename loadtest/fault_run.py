"""A fault run: steady load on the local stack while the origin is killed and later restarted.

Counts how each request was served (fresh, stale, fallback, failed), per phase, and checks every
answer: it must answer the question asked, for the tenant who asked. Any wrong answer fails the run.

    python -m loadtest.fault_run --duration 30 --clients 8        (or: eaves faults ...)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from eaves.stack import Stack, kill_server, restart_server, running_stack
from origin.generators.simulator import answer_head

PHASES = ("before", "outage", "after")
OUTCOMES = ("fresh", "stale", "fallback", "failed")


@dataclass
class Tally:
    outcomes: dict[str, Counter[str]] = field(default_factory=lambda: {p: Counter() for p in PHASES})
    wrong: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)

    def report(self) -> dict[str, Any]:
        total = Counter[str]()
        for counts in self.outcomes.values():
            total.update(counts)
        lat = sorted(self.latencies_ms) or [0.0]
        return {
            "phases": {p: {o: self.outcomes[p][o] for o in OUTCOMES} for p in PHASES},
            "total": {o: total[o] for o in OUTCOMES},
            "requests": sum(total.values()),
            "wrong_answers": len(self.wrong),
            "wrong_examples": self.wrong[:5],
            "p50_ms": round(lat[len(lat) // 2], 2),
            "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 2),
        }


def outcome_of(status: int, route: str | None) -> str:
    if status == 200 and route in ("hit", "miss"):
        return "fresh"
    if status == 200 and route == "stale":
        return "stale"
    if status == 200 and route == "fallback":
        return "fallback"
    return "failed"


def check(body: dict[str, Any], tenant: str, prompt: str) -> str | None:
    """Why this answer is wrong for (tenant, prompt), or None if it is right."""
    try:
        content = body["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return f"malformed body {str(body)[:80]}"
    expected = answer_head(tenant, "", prompt)
    return None if content.startswith(expected) else f"{tenant}/{prompt!r} got {content[:80]!r}"


async def client_loop(url: str, keys: dict[str, str], questions: list[str], weights: list[float],
                      deadline: float, phase: list[str], tally: Tally, seed: int) -> None:
    rng = random.Random(seed)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        while time.monotonic() < deadline:
            tenant = rng.choice(list(keys))
            prompt = rng.choices(questions, weights)[0] if rng.random() < 0.9 else f"fresh question {rng.random()}"
            started = time.perf_counter()
            current = phase[0]
            try:
                response = await client.post("/v1/chat/completions",
                                              json={"messages": [{"role": "user", "content": prompt}]},
                                              headers={"authorization": f"Bearer {keys[tenant]}"})
            except httpx.HTTPError:
                tally.outcomes[current]["failed"] += 1
                continue
            tally.latencies_ms.append((time.perf_counter() - started) * 1000)
            result = outcome_of(response.status_code, response.headers.get("x-edge-route"))
            tally.outcomes[current][result] += 1
            if response.status_code == 200 and result != "fallback":
                problem = check(response.json(), tenant, prompt)
                if problem:
                    tally.wrong.append(problem)
            elif response.status_code >= 500 and result == "failed":
                await asyncio.sleep(0.05)  # a real client backs off a little


async def drive(stack: Stack, keys: dict[str, str], duration: float, clients: int, kill_at: float,
                restart_at: float) -> Tally:
    assert stack.edge and stack.origin
    questions = [f"popular question number {i}" for i in range(40)]
    weights = [1.0 / (rank + 1) for rank in range(len(questions))]  # Zipf, s = 1
    tally = Tally()
    phase = ["before"]
    start = time.monotonic()
    deadline = start + duration
    loops = [asyncio.create_task(client_loop(stack.edge.url, keys, questions, weights, deadline, phase, tally, i))
             for i in range(clients)]
    await asyncio.sleep(max(0.0, start + kill_at - time.monotonic()))
    kill_server(stack.origin)
    phase[0] = "outage"
    await asyncio.sleep(max(0.0, start + restart_at - time.monotonic()))
    await asyncio.to_thread(restart_server, stack.origin)
    phase[0] = "after"
    await asyncio.gather(*loops)
    return tally


def fault_run(duration: float, clients: int, data_dir: Path) -> dict[str, Any]:
    from edge.auth import KEY_PREFIX, api_key_hash, api_key_record
    from shared.kv_lmdb import LmdbKV
    from shared.local_stack import LocalStack

    store = LmdbKV(LocalStack(data_dir).kv_path)
    keys = {}
    for tenant in ("tenant-a", "tenant-b", "tenant-c"):
        keys[tenant] = f"eav_fault_{tenant}_{random.getrandbits(64):x}"
        store.put(KEY_PREFIX + api_key_hash(keys[tenant]), api_key_record(tenant, "enterprise", "fault", time.time()))
    env = {"EAVES_INTENT": "off", "EAVES_SIM_TTFT_MS": "30", "EAVES_SIM_TOKENS_PER_S": "2000",
           "EAVES_SIM_ECHO_TENANT": "1", "EAVES_CACHE_TTL_S": str(max(2, int(duration * 0.15))),
           "EAVES_CACHE_STALE_S": str(max(2, int(duration * 0.15))), "EAVES_ORIGIN_TIMEOUT_S": "2",
           "EAVES_BREAKER_COOLDOWN_S": "1", "EAVES_TIERS": json.dumps({"enterprise": {"limit": 10**6, "window_s": 60}})}
    with running_stack(data_dir, env=env) as stack:
        tally = asyncio.run(drive(stack, keys, duration, clients, duration * 0.35, duration * 0.65))
    report = tally.report()
    report.update({"duration_s": duration, "clients": clients, "origin_killed_at_s": round(duration * 0.35, 1),
                   "origin_restarted_at_s": round(duration * 0.65, 1)})
    return report


def render(report: dict[str, Any]) -> str:
    lines = [f"fault run: {report['requests']} requests, {report['clients']} clients, {report['duration_s']:g}s; "
             f"origin killed at {report['origin_killed_at_s']}s, restarted at {report['origin_restarted_at_s']}s",
             f"{'phase':<8}" + "".join(f"{o:>10}" for o in OUTCOMES)]
    for phase in (*PHASES, "total"):
        counts = report["total"] if phase == "total" else report["phases"][phase]
        lines.append(f"{phase:<8}" + "".join(f"{counts[o]:>10}" for o in OUTCOMES))
    lines.append(f"wrong answers: {report['wrong_answers']}   latency p50 {report['p50_ms']} ms, "
                 f"p99 {report['p99_ms']} ms")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load (default: %(default)s)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")


def main_with(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="eaves-fault-") as tmp:
        report = fault_run(args.duration, args.clients, Path(tmp))
    print(json.dumps(report) if args.json else render(report))
    return 1 if report["wrong_answers"] else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add_arguments(parser)
    return main_with(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
