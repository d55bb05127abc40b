"""`eaves scenarios`: the held-out question banks against a fresh local stack, scored per label against the
targets of issue 16 (shareable answered from the edge for a second user, personal never served across users,
time-sensitive never older than 300 s)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from eaves.commands.common import add_runtime


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from loadtest.banks import BANK_DIR
    from loadtest.scenarios import CALLER_KINDS

    parser = sub.add_parser("scenarios", help="ask the held-out question banks as two users of one tenant and "
                                              "score the edge's decisions per label")
    parser.add_argument("--banks", type=Path, default=BANK_DIR,
                        help="directory of *.jsonl question banks (default: the shipped held-out banks)")
    parser.add_argument("--sample", type=int, default=None,
                        help="questions per label, a seeded random sample (default: all)")
    parser.add_argument("--seed", type=int, default=16, help="seed of --sample (default: %(default)s)")
    parser.add_argument("--callers", default=",".join(CALLER_KINDS),
                        help="comma-separated: api_key (end user in the request's 'user' field), jwt (end user "
                             "in 'sub') (default: %(default)s)")
    parser.add_argument("--concurrency", type=int, default=4, help="questions in flight (default: %(default)s)")
    parser.add_argument("--data-dir", type=Path, default=None, help="stack state (default: a temporary directory)")
    parser.add_argument("--include-seen", action="store_true",
                        help="also score questions that the intent model's training data holds (left out by "
                             "default: they measure memory, not judgement)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is not met")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    add_runtime(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from eaves.stack import StackError
    from loadtest.banks import BankError
    from loadtest.scenarios import CALLER_KINDS, ScenarioConfig, render, run_scenarios

    callers = tuple(c.strip() for c in args.callers.split(",") if c.strip())
    unknown = [c for c in callers if c not in CALLER_KINDS]
    if not callers or unknown:
        print(f"eaves scenarios: --callers takes {', '.join(CALLER_KINDS)}; got {args.callers!r}", file=sys.stderr)
        return 2
    if (args.sample is not None and args.sample < 1) or args.concurrency < 1:
        print("eaves scenarios: --sample and --concurrency must be at least 1", file=sys.stderr)
        return 2
    config = ScenarioConfig(bank_dir=args.banks, sample=args.sample, seed=args.seed, callers=callers,
                            concurrency=args.concurrency, runtime=args.runtime, data_dir=args.data_dir)
    if args.include_seen:
        config.training_data = None
    try:
        report = run_scenarios(config)
    except (BankError, StackError) as exc:
        print(f"eaves scenarios: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report) if args.json else render(report))
    return 1 if args.check and not all(t["met"] for t in report["targets"].values()) else 0
