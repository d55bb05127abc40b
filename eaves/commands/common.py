"""Options every command spells the same way."""

from __future__ import annotations

import argparse
import os
import sys
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
    """Run an ASGI app factory under uvicorn; worker processes read their settings from ``env``.

    Both servers get a bound on request heads and a deadline for them (edge.emulator.limits). Neither reads
    X-Forwarded-* (nothing here uses the client's address, and every local client would be a "trusted
    proxy" able to claim any address) nor names itself in a ``server`` header: each was per-request work
    for nothing (uvicorn's proxy-headers middleware was ~2 % of a served cache hit's CPU)."""
    import uvicorn

    from edge.settings import SettingsError

    try:
        from edge.emulator.limits import uvicorn_options
    except SettingsError as exc:  # a malformed EAVES_MAX_HEADER_BYTES or EAVES_HEADER_TIMEOUT_S
        print(f"eaves: {exc}", file=sys.stderr)
        return 2
    os.environ.update(env)
    uvicorn.run(app, factory=True, host=host, port=port, workers=workers, access_log=access_log, log_level="info",
                proxy_headers=False, server_header=False, **uvicorn_options())
    return 0
GENERATOR_CHOICES = ("auto", "simulator", "llama", "openai")


def add_generator(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--generator", choices=GENERATOR_CHOICES, default=os.environ.get("EAVES_GENERATOR", "auto"),
                        help="the origin's model: llama (embedded Gemma 3 270M, needs scripts/setup --llm), "
                             "openai (EAVES_OPENAI_BASE_URL), simulator (latency simulator); auto picks llama "
                             "when installed, else simulator (default: %(default)s)")


def resolve_generator(name: str) -> str:
    if name != "auto":
        return name
    from origin.generators.llama import llama_available

    return "llama" if llama_available() else "simulator"


def describe_generator(name: str) -> str:
    return {
        "llama": "llama (embedded Gemma 3 270M Q4_K_M on the CPU via llama.cpp; Gemma Terms of Use)",
        "simulator": "simulator (latency simulator: canned text, no model; scripts/setup --llm installs the "
                     "embedded one)",
        "openai": f"openai (OpenAI-compatible API at {os.environ.get('EAVES_OPENAI_BASE_URL', '?')})",
    }.get(name, name)


RUNTIMES = ("cpython", "pyodide")


def add_runtime(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runtime", choices=RUNTIMES, default=os.environ.get("EAVES_RUNTIME", "cpython"),
                        help="cpython: the emulator (uvicorn, LMDB); pyodide: the Workers entry point in Pyodide "
                             "under Node, the deployed code path (needs scripts/setup --node) (default: %(default)s)")
