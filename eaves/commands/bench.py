"""`eaves bench`: the emulator's cache-hit throughput beside the bare ceiling app, and the hit path's cost."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("bench", help="measure cache-hit throughput vs. a bare Starlette ceiling (needs wrk)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating ceiling/emulator rounds (default: %(default)s)")
    parser.add_argument("--connections", type=int, default=50, help="wrk's fixed concurrency (default: %(default)s)")
    parser.add_argument("--iterations", type=int, default=20_000,
                        help="in-process hit-path iterations per layer (default: %(default)s)")
    parser.add_argument("--in-process-only", action="store_true", help="skip the HTTP rounds (no wrk needed)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="where the benchmark's stack keeps its state (default: a temporary directory)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from eaves.bench.run import BenchConfig, BenchError, format_table
    from eaves.bench.run import run as run_bench
    from eaves.bench.wrk import WrkError
    from eaves.stack import StackError

    if args.duration < 1 or args.rounds < 1 or args.connections < 1 or args.iterations < 100:
        print("eaves bench: --duration ≥ 1, --rounds ≥ 1, --connections ≥ 1 and --iterations ≥ 100", file=sys.stderr)
        return 2
    config = BenchConfig(duration_s=args.duration, rounds=args.rounds, connections=args.connections,
                         iterations=args.iterations, data_dir=args.data_dir, skip_http=args.in_process_only)
    try:
        result = run_bench(config, progress=lambda message: print(f"eaves bench: {message}", file=sys.stderr))
    except (BenchError, WrkError, StackError) as exc:
        print(f"eaves bench: {exc}", file=sys.stderr)
        return 1
    data = result.as_dict()
    print(json.dumps(data) if args.json else format_table(data))
    return 0
