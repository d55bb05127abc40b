"""`eaves up`: origin + edge emulator on this machine, a demo tenant, and where to send requests."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from eaves.commands.common import (
    add_data_dir,
    add_edge_port,
    add_generator,
    add_host,
    add_origin_port,
    add_runtime,
    describe_generator,
    resolve_generator,
)

DEMO_TENANT = "demo"
DEMO_TIER = "pro"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("up", help="run origin + edge emulator and print where to send requests")
    add_host(parser)
    add_edge_port(parser)
    add_origin_port(parser)
    add_data_dir(parser)
    parser.add_argument("--edge-workers", type=int, default=1, help="edge worker processes (default: 1)")
    parser.add_argument("--origin-workers", type=int, default=1, help="origin worker processes (default: 1)")
    add_generator(parser)
    add_runtime(parser)
    parser.set_defaults(func=run)


def demo_key(data_dir: Path) -> str:
    """The demo tenant's key: created (hash in the KV, key in <data-dir>/demo-key) on first start."""
    from edge.auth import KEY_PREFIX, api_key_hash, api_key_record, new_api_key
    from shared.kv_lmdb import LmdbKV
    from shared.local_stack import LocalStack

    stack = LocalStack(data_dir)
    store = LmdbKV(stack.kv_path)
    try:
        key = stack.demo_key_path.read_text().strip()
        if store.get(KEY_PREFIX + api_key_hash(key)) is not None:
            return key
    except FileNotFoundError:
        pass
    key = new_api_key()
    store.put(KEY_PREFIX + api_key_hash(key), api_key_record(DEMO_TENANT, DEMO_TIER, "demo", time.time()))
    fd = os.open(stack.demo_key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key


RUNTIME_NAMES = {"cpython": "CPython emulator (uvicorn, LMDB)",
                 "pyodide": "Workers entry point in Pyodide under Node (the deployed code path)"}


def banner(edge_url: str, origin_url: str, key: str, generator: str, data_dir: Path, runtime: str = "cpython",
           metrics_token: str = "") -> str:
    return f"""
eaves is up.
  edge (send requests here):  {edge_url}/v1/chat/completions   (OpenAI-compatible; base URL {edge_url}/v1)
  edge runtime:               {RUNTIME_NAMES[runtime]}
  origin (edge only):         {origin_url}   generator: {generator}
  data directory:             {data_dir}
  demo tenant 'demo', tier '{DEMO_TIER}', API key: {key}
  metrics (operator only):    curl -H 'Authorization: Bearer {metrics_token}' {edge_url}/metrics
                              (the same token opens {origin_url}/metrics and the origin's /healthz totals)

Try it (the second run is answered from the edge's KV: x-edge-route: hit):
  curl -si {edge_url}/v1/chat/completions \\
    -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\
    -d '{{"model": "eaves-default", "messages": [{{"role": "user", "content": "How do I cook rice?"}}]}}'

Press Ctrl-C to stop.
"""


def run(args: argparse.Namespace) -> int:
    from eaves.stack import StackError, running_stack
    from shared.local_stack import LocalStack

    data_dir = args.data_dir.resolve()
    LocalStack(data_dir).config()
    key = demo_key(data_dir)
    generator = resolve_generator(args.generator)
    env = {"EAVES_GENERATOR": generator}
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    try:
        with running_stack(data_dir, host=args.host, edge_port=args.edge_port, origin_port=args.origin_port,
                           edge_workers=args.edge_workers, origin_workers=args.origin_workers, env=env,
                           edge_args=["--runtime", args.runtime]) as stack:
            assert stack.edge and stack.origin
            print(banner(stack.edge.url, stack.origin.url, key, describe_generator(generator), data_dir, args.runtime,
                         stack.metrics_token), flush=True)
            while not stopping:
                for server in stack.servers:
                    if server.process.poll() is not None:
                        print(f"eaves up: {server.name} exited ({server.process.returncode}):\n"
                              f"{server.log_tail()}", file=sys.stderr)
                        return 1
                time.sleep(0.5)
    except StackError as exc:
        print(f"eaves up: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    print("eaves up: stopped", file=sys.stderr)
    return 0
