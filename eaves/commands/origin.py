"""`eaves origin`: the origin service alone (as it runs on its own machine)."""

from __future__ import annotations

import argparse
import os

from eaves.commands.common import add_data_dir, add_host, add_origin_port


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("origin", help="run the origin service (generation + KV write-back)")
    add_host(parser)
    add_origin_port(parser)
    add_data_dir(parser)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default: 1)")
    parser.add_argument("--generator", default=os.environ.get("EAVES_GENERATOR", "simulator"),
                        help="simulator (default: %(default)s)")
    parser.add_argument("--access-log", action="store_true", help="log every request (slower)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    os.environ["EAVES_DATA_DIR"] = str(args.data_dir)
    os.environ["EAVES_GENERATOR"] = args.generator
    # prometheus_client's multiprocess mode: set before any worker imports it, emptied at each start.
    from origin.metrics import reset_directory

    metrics_dir = args.data_dir.resolve() / "metrics" / "origin"
    reset_directory(metrics_dir)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    uvicorn.run("origin.app:create_app", factory=True, host=args.host, port=args.origin_port,
                workers=args.workers, access_log=args.access_log, log_level="info")
    return 0
