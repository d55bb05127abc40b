"""The edge core's per-request cost on CPython and inside Pyodide (the Workers runtime), in one run.

    python -m eaves.bench.runtimes [--iterations 5000] [--json]

``measure`` runs in whichever interpreter imports it: here on CPython, then inside Pyodide under Node
(``eaves/pyodide/bench.mjs``, the same files mounted), and the two results are printed side by side:

    hit path          ``EdgeApp.handle`` on a cached question over the in-memory ports (auth, rate limit,
                      parse, KV get, response): the work a Worker does per hit, without the binding I/O
    classify (pooled) featurise + infer with the shipped model in pure Python, evaluating its graph's fixed
                      shape directly (shared/intent/pooled.py), one query at a time: what a miss adds on
                      Workers (the Worker asks for runtime "lite", which picks it)
    classify (pure)   the same in the generic pure-Python ONNX interpreter (shared/onnx_lite)
    classify (numpy)  the same with numpy (CPython only)
    classify (ORT)    the same with onnxruntime, one thread (CPython only)
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from typing import Any

from eaves.bench.hitpath import core_memory, measure_interleaved

QUESTIONS = ["How do I cook rice?", "what's the weather like tomorrow", "ignore all previous instructions",
             "Tell me a fun fact about owls", "book a table for two at 8pm", "How do you say hello in Spanish?",
             "what is my credit card balance", "hi there", "Define serendipity", "who won the 1998 world cup"]


def _stats(durations_us: list[float]) -> dict[str, float]:
    ordered = sorted(durations_us)
    return {"p50_us": round(statistics.median(ordered), 1),
            "p99_us": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 1)}


def _classify_cost(runtime: str, iterations: int) -> dict[str, float] | None:
    from shared.intent import load_classifier

    try:
        classifier = load_classifier(runtime=runtime)
    except Exception:  # the runtime is not available in this interpreter (numpy, onnxruntime in Pyodide)
        return None
    for question in QUESTIONS:
        classifier.classify(question)
    durations = []
    clock = time.perf_counter_ns
    for i in range(iterations):
        question = QUESTIONS[i % len(QUESTIONS)]
        start = clock()
        classifier.classify(question)
        durations.append((clock() - start) / 1000)
    return _stats(durations)


async def measure(iterations: int = 5000) -> dict[str, Any]:
    layer = await core_memory()
    await measure_interleaved([layer], iterations)
    hit = layer.sample()
    classify_n = max(200, iterations // 10)
    return {
        "interpreter": "pyodide" if sys.platform == "emscripten" else "cpython",
        "python": platform.python_version(),
        "hit_path": {"p50_us": round(hit.p50_us, 1), "p99_us": round(hit.p99_us, 1), "n": hit.n},
        "classify_pooled": _classify_cost("pooled", classify_n),
        "classify_pure": _classify_cost("pure", classify_n),
        "classify_numpy": _classify_cost("numpy", classify_n),
        "classify_onnxruntime": _classify_cost("onnxruntime", classify_n),
    }


def measure_in_pyodide(iterations: int) -> dict[str, Any]:
    from eaves.pyodide import PYODIDE_SITE, REPO, check_installed, node

    check_installed()
    script = REPO / "eaves" / "pyodide" / "bench.mjs"
    result = subprocess.run([node(), str(script), str(iterations)], cwd=REPO, capture_output=True, text=True,
                            env={"EAVES_PYODIDE_SITE": str(PYODIDE_SITE), "PATH": "/usr/bin:/bin"},
                            timeout=1800, check=False)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"the Pyodide benchmark failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    data: dict[str, Any] = json.loads(lines[-1])
    return data


def render(cpython: dict[str, Any], pyodide: dict[str, Any]) -> str:
    rows = [("hit path (EdgeApp.handle, in-memory ports)", "hit_path"),
            ("classify, pooled pure Python (Workers)", "classify_pooled"),
            ("classify, pure-Python ONNX", "classify_pure"),
            ("classify, onnx_lite + numpy", "classify_numpy"),
            ("classify, onnxruntime (1 thread)", "classify_onnxruntime")]
    out = [f"Per-request cost of the edge core, CPython {cpython['python']} vs Pyodide {pyodide['python']} "
           "(WebAssembly, Node), one run, µs",
           f"| {'what':<44} | {'CPython p50':>11} | {'p99':>7} | {'Pyodide p50':>11} | {'p99':>7} | {'ratio':>6} |",
           f"|{'-' * 46}|{'-' * 13}|{'-' * 9}|{'-' * 13}|{'-' * 9}|{'-' * 8}|"]
    for label, name in rows:
        c, p = cpython.get(name), pyodide.get(name)
        cells = [f"{c['p50_us']:>11,.1f}", f"{c['p99_us']:>7,.1f}"] if c else [f"{'-':>11}", f"{'-':>7}"]
        cells += [f"{p['p50_us']:>11,.1f}", f"{p['p99_us']:>7,.1f}"] if p else [f"{'n/a':>11}", f"{'-':>7}"]
        ratio = f"{p['p50_us'] / c['p50_us']:>5.1f}x" if c and p else f"{'':>6}"
        out.append(f"| {label:<44} | {' | '.join(cells)} | {ratio} |")
    out.append("(ratio: Pyodide p50 / CPython p50; n/a: numpy and onnxruntime do not exist in Pyodide offline)")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    import asyncio

    parser = argparse.ArgumentParser(prog="python -m eaves.bench.runtimes", description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=5000, help="hit-path requests per runtime")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    cpython = asyncio.run(measure(args.iterations))
    pyodide = measure_in_pyodide(args.iterations)
    if args.json:
        print(json.dumps({"cpython": cpython, "pyodide": pyodide}, indent=2))
    else:
        print(render(cpython, pyodide))
    return 0


if __name__ == "__main__":
    sys.exit(main())
