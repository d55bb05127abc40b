"""`eaves loadtest`: locust scenarios, headless and bounded, against the edge; tables per route and per label.

Exits 1 on any unexpected failure and on any answer served across users."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from eaves.commands.common import add_runtime


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("loadtest", help="run the locust scenarios against the edge and summarise per route")
    parser.add_argument("--users", type=int, default=20, help="simulated users (default: %(default)s)")
    parser.add_argument("--spawn-rate", type=float, default=10.0,
                        help="users started per second (default: %(default)s)")
    parser.add_argument("--run-time", type=int, default=30, help="seconds of load, at most 1800 (default: %(default)s)")
    parser.add_argument("--url", default=None,
                        help="an edge already running (127.0.0.1 only); default: start a fresh local stack")
    parser.add_argument("--key", default=os.environ.get("EAVES_LOADTEST_KEY"),
                        help="with --url: an API key with room for the whole test (env EAVES_LOADTEST_KEY)")
    parser.add_argument("--low-key", default=os.environ.get("EAVES_LOADTEST_LOW_KEY"),
                        help="with --url: a key on a small tier, for the over-the-limit client")
    parser.add_argument("--out", type=Path, default=Path("reports/loadtest"),
                        help="where locust's CSV, HTML report and the servers' logs go (default: %(default)s)")
    parser.add_argument("--edge-workers", type=int, default=1, help="edge worker processes (default: 1)")
    parser.add_argument("--origin-workers", type=int, default=1, help="origin worker processes (default: 1)")
    parser.add_argument("--data-dir", type=Path, default=None, help="stack state (default: a temporary directory)")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    add_runtime(parser)
    parser.set_defaults(func=run)


def _local_only(url: str) -> bool:
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def run(args: argparse.Namespace) -> int:
    from eaves.stack import StackError
    from loadtest.run import LoadTestConfig, LoadTestError, format_table
    from loadtest.run import run as run_loadtest

    if not 1 <= args.run_time <= 1800 or args.users < 1 or args.spawn_rate <= 0:
        print("eaves loadtest: --run-time between 1 and 1800 s, --users ≥ 1, --spawn-rate > 0", file=sys.stderr)
        return 2
    if args.url and not _local_only(args.url):
        print("eaves loadtest: load tests only target this machine (127.0.0.1 / localhost)", file=sys.stderr)
        return 2
    config = LoadTestConfig(users=args.users, spawn_rate=args.spawn_rate, run_time_s=args.run_time, url=args.url,
                            key=args.key, low_key=args.low_key, out_dir=args.out, edge_workers=args.edge_workers,
                            origin_workers=args.origin_workers, data_dir=args.data_dir, runtime=args.runtime)
    print(f"eaves loadtest: {args.users} users for {args.run_time}s against "
          f"{args.url or f'a fresh local stack (edge runtime {args.runtime})'}", file=sys.stderr)
    try:
        result = run_loadtest(config)
    except (LoadTestError, StackError) as exc:
        print(f"eaves loadtest: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result.as_dict()) if args.json else format_table(result))
    return 1 if result.unexpected_failures or result.served_across_users else 0
