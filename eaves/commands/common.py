"""Options every command spells the same way."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

DEFAULT_EDGE_PORT = 8787  # wrangler dev's port, so client code moves between the two unchanged
DEFAULT_ORIGIN_PORT = 8788
DEFAULT_HOST = "127.0.0.1"


def default_data_dir() -> Path:
    return Path(os.environ.get("EAVES_DATA_DIR", ".eaves"))


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=default_data_dir(),
                        help="where the KV, keys and settings live (default: %(default)s, env EAVES_DATA_DIR)")


def add_edge_port(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--edge-port", type=int, default=DEFAULT_EDGE_PORT, help="default: %(default)s")


def add_origin_port(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--origin-port", type=int, default=DEFAULT_ORIGIN_PORT, help="default: %(default)s")


def add_host(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to bind (default: %(default)s)")


def serve(app: str, *, host: str, port: int, workers: int, access_log: bool, env: dict[str, str]) -> int:
    """Run an ASGI app factory under uvicorn; worker processes read their settings from ``env``."""
    import uvicorn

    os.environ.update(env)
    uvicorn.run(app, factory=True, host=host, port=port, workers=workers, access_log=access_log, log_level="info")
    return 0
