"""`eaves bench`: the emulator's cache-hit throughput beside the bare ceiling app, and the hit path's cost."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# eaves.bench.run.DEFAULT_VARIANTS, spelled here so that building the parser imports nothing heavy.
DEFAULT_VARIANTS = ("defaults", "logs_off", "metrics_off", "off")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("bench", help="measure cache-hit throughput vs. a bare Starlette ceiling and the load "
                                          "generator's own capacity (needs wrk)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating ceiling/emulator rounds (default: %(default)s)")
    parser.add_argument("--connections", type=int, default=32, help="wrk's fixed concurrency (default: %(default)s)")
    parser.add_argument("--bodies", type=int, default=4,
                        help="distinct cached questions, one per wrk thread (default: %(default)s)")
    parser.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                        help="emulator settings to measure side by side, from defaults (JSON logs and metrics on), "
                             "logs_off, metrics_off, off (default: %(default)s)")
    parser.add_argument("--iterations", type=int, default=20_000,
                        help="in-process hit-path iterations per layer (default: %(default)s)")
    parser.add_argument("--in-process-only", action="store_true", help="skip the HTTP rounds (no wrk needed)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="where the benchmark's stack keeps its state (default: a temporary directory)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from eaves.bench.run import VARIANTS, BenchConfig, BenchError, format_table
    from eaves.bench.run import run as run_bench
    from eaves.bench.wrk import WrkError
    from eaves.stack import StackError

    if args.duration < 1 or args.rounds < 1 or args.connections < 1 or args.iterations < 100 or args.bodies < 1:
        print("eaves bench: --duration ≥ 1, --rounds ≥ 1, --connections ≥ 1, --bodies ≥ 1 and --iterations ≥ 100",
              file=sys.stderr)
        return 2
    variants = tuple(name.strip() for name in args.variants.split(",") if name.strip())
    if not variants or any(name not in VARIANTS for name in variants) or "defaults" not in variants:
        print(f"eaves bench: --variants takes a comma-separated list from {', '.join(VARIANTS)}, including defaults",
              file=sys.stderr)
        return 2
    config = BenchConfig(duration_s=args.duration, rounds=args.rounds, connections=args.connections,
                         iterations=args.iterations, data_dir=args.data_dir, skip_http=args.in_process_only,
                         bodies=args.bodies, variants=variants)
    try:
        result = run_bench(config, progress=lambda message: print(f"eaves bench: {message}", file=sys.stderr))
    except (BenchError, WrkError, StackError) as exc:
        print(f"eaves bench: {exc}", file=sys.stderr)
        return 1
    data = result.as_dict()
    print(json.dumps(data) if args.json else format_table(data))
    return 0
