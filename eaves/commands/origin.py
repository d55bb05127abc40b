"""`eaves origin`: the origin service alone (as it runs on its own machine)."""

from __future__ import annotations

import argparse

from eaves.commands.common import (
    add_data_dir,
    add_generator,
    add_host,
    add_origin_port,
    describe_generator,
    resolve_generator,
    serve,
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("origin", help="run the origin service (generation + KV write-back)")
    add_host(parser)
    add_origin_port(parser)
    add_data_dir(parser)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default: 1)")
    add_generator(parser)
    parser.add_argument("--access-log", action="store_true", help="log every request (slower)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    generator = resolve_generator(args.generator)
    print(f"eaves origin: generator {describe_generator(generator)}", flush=True)
    # prometheus_client's multiprocess mode: set before any worker imports it, emptied at each start.
    from origin.metrics import reset_directory

    metrics_dir = args.data_dir.resolve() / "metrics" / "origin"
    reset_directory(metrics_dir)
    return serve("origin.app:create_app", host=args.host, port=args.origin_port,
                 workers=args.workers, access_log=args.access_log,
                 env={"EAVES_DATA_DIR": str(args.data_dir), "EAVES_GENERATOR": generator,
                      "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)})
