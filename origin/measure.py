"""Measurements behind the README's generation figures, runnable on any machine.

    python -m origin.measure ttfb [--requests 400]   streaming TTFB/TTFT through the edge minus straight
                                                    from the origin (latency simulator, local stack)
    python -m origin.measure llama [--runs 5]         the embedded model's tokens per second here

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m origin.measure", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    ttfb = sub.add_parser("ttfb")
    ttfb.add_argument("--requests", type=int, default=400, help="per path (default: %(default)s)")
    ttfb.add_argument("--ttft-ms", type=int, default=20, help="the simulator's time to first token")
    llama = sub.add_parser("llama")
    llama.add_argument("--runs", type=int, default=6)
    llama.add_argument("--max-tokens", type=int, default=128)
    args = parser.parse_args(argv)
    report = measure_ttfb(args.requests, args.ttft_ms) if args.what == "ttfb" else \
        measure_llama(args.runs, args.max_tokens)
    json.dump(report, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
