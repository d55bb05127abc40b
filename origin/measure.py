"""Measurements behind the README's generation figures, runnable on any machine.

    eaves measure-generation [all|ttfb|llama] [--json]   (same as python -m origin.measure)

    ttfb   streaming TTFB/TTFT through the edge minus straight from the origin (latency simulator, local stack)
    llama  the embedded model's tokens per second here (skipped under `all` when it is not installed)

``ttfb`` starts the stack (origin + edge emulator, one worker each) on 127.0.0.1, then sends
interleaved streaming requests, each a distinct question (so every one is a miss that the origin
generates), alternately through the edge and straight to the origin with the edge's signature.
Per request it records the time to the first body byte (TTFB) and to the first content delta (TTFT).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_CONTENT = re.compile(rb'"delta":\{"content":"[^"]')


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def _first_times(client: Any, url: str, body: bytes, headers: dict[str, str]) -> tuple[float, float]:
    started = time.perf_counter()
    ttfb = ttft = None
    with client.stream("POST", url, content=body, headers=headers) as response:
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}: {response.read()[:200]!r}")
        for chunk in response.iter_raw():
            now = time.perf_counter() - started
            if ttfb is None and chunk:
                ttfb = now
            if ttft is None and _CONTENT.search(chunk):
                ttft = now
    if ttfb is None or ttft is None:
        raise RuntimeError("stream ended without content")
    return ttfb, ttft


def measure_ttfb(requests: int, ttft_ms: int) -> dict[str, Any]:
    import httpx

    from eaves.commands.up import demo_key
    from eaves.stack import running_stack
    from shared import signing, wire
    from shared.local_stack import LocalStack

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        key = demo_key(data_dir)
        secret = LocalStack(data_dir).origin_secret()
        env = {"EAVES_GENERATOR": "simulator", "EAVES_SIM_TTFT_MS": str(ttft_ms), "EAVES_SIM_TOKENS_PER_S": "500",
               "EAVES_SIM_ANSWER_TOKENS": "8", "EAVES_INTENT": "off", "EAVES_HEARTBEAT_S": "30"}
        samples: dict[str, dict[str, list[float]]] = {"edge": {"ttfb": [], "ttft": []},
                                                      "origin": {"ttfb": [], "ttft": []}}
        with running_stack(data_dir, env=env) as stack, httpx.Client(timeout=30) as client:
            assert stack.edge is not None and stack.origin is not None
            for i in range(-20, requests):  # 20 warm-up rounds, not recorded
                for via in ("edge", "origin"):
                    question = {"model": "eaves-default", "stream": True,
                                "messages": [{"role": "user", "content": f"question {via} {i} {time.time_ns()}"}]}
                    body = json.dumps(question).encode()
                    if via == "edge":
                        url = stack.edge.url + "/v1/chat/completions"
                        headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
                    else:
                        url = stack.origin.url + "/v1/chat/completions"
                        headers = {"content-type": "application/json", wire.TENANT_HEADER: "demo"}
                        headers.update(signing.sign(secret, "POST", "/v1/chat/completions", body, time.time(),
                                                    headers))
                    ttfb, ttft = _first_times(client, url, body, headers)
                    if i >= 0:
                        samples[via]["ttfb"].append(ttfb)
                        samples[via]["ttft"].append(ttft)
    report: dict[str, Any] = {"requests_each": requests, "simulated_ttft_ms": ttft_ms}
    for metric in ("ttfb", "ttft"):
        for q in (50, 99):
            edge, origin = percentile(samples["edge"][metric], q), percentile(samples["origin"][metric], q)
            report[f"{metric}_p{q}_ms"] = {"edge": round(edge * 1000, 2), "origin": round(origin * 1000, 2),
                                           "edge_minus_origin": round((edge - origin) * 1000, 2)}
    return report


def measure_llama(runs: int, max_tokens: int) -> dict[str, Any]:
    import asyncio

    from origin.generators.base import GenerationRequest
    from origin.generators.llama import LlamaGenerator, completion_prompt

    started = time.perf_counter()
    generator = LlamaGenerator()
    load_s = time.perf_counter() - started
    questions = ["How do I reset my password?", "What is an edge network?", "Write a short poem about the sea.",
                 "Explain what a cache is.", "Why is the sky blue?", "How do plants grow?"]

    async def one(question: str) -> tuple[int, float, float]:
        request = GenerationRequest(model="gemma", messages=[{"role": "user", "content": question}],
                                    prompt=question, max_tokens=max_tokens, temperature=0.7)
        t0 = time.perf_counter()
        first = None
        tokens = 0
        async for piece in generator.stream(request):
            first = first or time.perf_counter()
            tokens += piece.tokens
        end = time.perf_counter()
        return tokens, (first or end) - t0, end - (first or end)

    results = [asyncio.run(one(questions[i % len(questions)])) for i in range(runs)]
    decode_rates = [(n - 1) / d for n, _, d in results if n > 1 and d > 0]
    total_tokens = sum(n for n, _, _ in results)
    total_time = sum(t + d for _, t, d in results)
    prompt_tokens = len(generator.model.tokenize(completion_prompt(GenerationRequest(
        model="g", messages=[{"role": "user", "content": questions[0]}], prompt=questions[0])).encode()))
    asyncio.run(generator.aclose())
    return {"runs": runs, "max_tokens": max_tokens, "threads": generator.n_threads, "load_s": round(load_s, 2),
            "completion_tokens": [n for n, _, _ in results],
            "ttft_ms_median": round(statistics.median(t for _, t, _ in results) * 1000, 1),
            "decode_tokens_per_s_median": round(statistics.median(decode_rates), 1) if decode_rates else None,
            "end_to_end_tokens_per_s": round(total_tokens / total_time, 1), "prompt_tokens_example": prompt_tokens}


def format_table(report: dict[str, Any]) -> str:
    """The report as a plain-text table (what `--json` prints as JSON)."""
    lines: list[str] = []
    ttfb = report.get("ttfb")
    if ttfb:
        lines.append(f"Streaming, latency simulator (TTFT {ttfb['simulated_ttft_ms']} ms), "
                     f"{ttfb['requests_each']} unique-prompt misses per path, 127.0.0.1")
        lines.append(f"{'metric':<10}{'edge ms':>10}{'origin ms':>11}{'edge - origin':>15}")
        for metric in ("ttfb", "ttft"):
            for q in (50, 99):
                row = ttfb[f"{metric}_p{q}_ms"]
                lines.append(f"{metric + ' p' + str(q):<10}{row['edge']:>10.2f}{row['origin']:>11.2f}"
                             f"{row['edge_minus_origin']:>15.2f}")
    llama = report.get("llama")
    if llama:
        if lines:
            lines.append("")
        if "skipped" in llama:
            lines.append(f"Embedded model: skipped ({llama['skipped']})")
        else:
            lines.append(f"Embedded model (Gemma 3 270M Q4_K_M, llama.cpp, {llama['threads']} threads), "
                         f"{llama['runs']} runs of <= {llama['max_tokens']} tokens")
            lines.append(f"  load {llama['load_s']} s, time to first token (median) {llama['ttft_ms_median']} ms")
            lines.append(f"  decode tokens/s (median) {llama['decode_tokens_per_s_median']}, "
                         f"end to end tokens/s {llama['end_to_end_tokens_per_s']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m origin.measure", description=__doc__.splitlines()[0])
    parser.add_argument("what", nargs="?", choices=("all", "ttfb", "llama"), default="all",
                        help="what to measure (default: both)")
    parser.add_argument("--requests", type=int, default=200, help="ttfb: requests per path (default: %(default)s)")
    parser.add_argument("--ttft-ms", type=int, default=20, help="ttfb: the simulator's time to first token")
    parser.add_argument("--runs", type=int, default=6, help="llama: generations (default: %(default)s)")
    parser.add_argument("--max-tokens", type=int, default=128, help="llama: tokens per generation")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.runs < 1 or args.max_tokens < 1 or args.ttft_ms < 0:
        parser.error("--requests, --runs and --max-tokens must be positive, --ttft-ms not negative")
    report: dict[str, Any] = {}
    if args.what in ("all", "ttfb"):
        report["ttfb"] = measure_ttfb(args.requests, args.ttft_ms)
    if args.what in ("all", "llama"):
        from origin.generators.llama import llama_available

        if llama_available():
            report["llama"] = measure_llama(args.runs, args.max_tokens)
        elif args.what == "llama":
            print("the embedded model is not installed (scripts/setup --llm)", file=sys.stderr)
            return 2
        else:
            report["llama"] = {"skipped": "the embedded model is not installed (scripts/setup --llm)"}
    print(json.dumps(report, indent=2) if args.json else format_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
