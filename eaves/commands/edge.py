"""`eaves edge`: the edge emulator alone, in front of an origin given by URL."""

from __future__ import annotations

import argparse
import os

from eaves.commands.common import add_data_dir, add_edge_port, add_host, add_runtime, serve


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("edge", help="run the edge emulator in front of an origin")
    add_host(parser)
    add_edge_port(parser)
    add_data_dir(parser)
    parser.add_argument("--origin", default=os.environ.get("EAVES_ORIGIN_URL", "http://127.0.0.1:8788"),
                        help="the origin's base URL (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default: 1)")
    parser.add_argument("--access-log", action="store_true", help="log every request (slower)")
    add_runtime(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.runtime == "pyodide":
        # The deployed code path: edge/entry.py in Pyodide under Node, one isolate (no --workers).
        from eaves.pyodide import serve as serve_pyodide

        return serve_pyodide(host=args.host, port=args.edge_port, origin_url=args.origin, data_dir=args.data_dir)
    # Every worker writes its metrics here; emptied now, before any worker starts (see edge.emulator.metrics).
    from edge.emulator.metrics import reset_directory

    metrics_dir = args.data_dir.resolve() / "metrics" / "edge"
    reset_directory(metrics_dir)
    return serve("edge.emulator.asgi:create_app", host=args.host, port=args.edge_port,
                 workers=args.workers, access_log=args.access_log,
                 env={"EAVES_DATA_DIR": str(args.data_dir), "EAVES_ORIGIN_URL": args.origin,
                      "EAVES_METRICS_DIR": str(metrics_dir),
                      # one worker keeps its rate-limit counters in memory (edge.emulator.counters)
                      "EAVES_EDGE_WORKERS": str(args.workers)})
