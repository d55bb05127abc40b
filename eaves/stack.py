"""Start and stop the local stack's servers as child processes, and wait until they answer.

Used by `eaves up`, the integration tests, `eaves loadtest` and `eaves bench`, so all of them run
the servers exactly as a user does.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path


class StackError(RuntimeError):
    """A server did not come up; the message carries what it printed."""


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    args: Sequence[str] = ()
    env: dict[str, str] | None = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


@dataclass
class Stack:
    edge: Server | None = None
    origin: Server | None = None
    servers: list[Server] = field(default_factory=list)
    metrics_token: str = ""

    @property
    def operator_headers(self) -> dict[str, str]:
        """What /metrics (edge and origin) and the origin's /healthz totals ask of a scraper."""
        return {"authorization": f"Bearer {self.metrics_token}"}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_healthy(server: Server, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise StackError(f"{server.name} exited with code {server.process.returncode}:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(server.url + "/healthz", timeout=1.0) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.05)
    raise StackError(f"{server.name} did not answer {server.url}/healthz within {timeout_s:g}s:\n"
                     f"{server.log_tail()}")


def start_server(name: str, args: Sequence[str], url: str, log_dir: Path,
                 env: dict[str, str] | None = None) -> Server:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    log_file = log_path.open("wb")
    process = subprocess.Popen([sys.executable, "-m", "eaves.cli", *args], stdout=log_file,
                               stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                               start_new_session=True)
    log_file.close()
    return Server(name, url, process, log_path, tuple(args), env)


def kill_server(server: Server) -> None:
    """SIGKILL, as a crash would: no shutdown handlers run."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait()


def restart_server(server: Server, timeout_s: float = 30.0) -> None:
    """Start the same server again (same port and options) in place, and wait until it answers."""
    stop_server(server)
    fresh = start_server(server.name, server.args, server.url, server.log_path.parent, server.env)
    server.process = fresh.process
    wait_healthy(server, timeout_s)


def stop_server(server: Server, timeout_s: float = 10.0) -> None:
    if server.process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.process.pid, signal.SIGTERM)
    try:
        server.process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait()


@contextlib.contextmanager
def running_stack(data_dir: Path, *, host: str = "127.0.0.1", edge_port: int | None = None,
                  origin_port: int | None = None, edge_workers: int = 1, origin_workers: int = 1,
                  env: dict[str, str] | None = None, edge_args: Sequence[str] = (),
                  origin_args: Sequence[str] = (), start_edge: bool = True) -> Iterator[Stack]:
    """Origin and edge emulator on ``host``, torn down on exit (also on error)."""
    origin_port = origin_port or free_port(host)
    if "--generator" not in origin_args and "EAVES_GENERATOR" not in {**os.environ, **(env or {})}:
        # Tests, benchmarks and load tests want the deterministic simulator even where the embedded
        # model is installed; `eaves up` names its generator explicitly.
        origin_args = [*origin_args, "--generator", "simulator"]
    edge_port = edge_port or free_port(host)
    log_dir = data_dir / "logs"
    from shared.local_stack import LocalStack

    stack = Stack(metrics_token=LocalStack(data_dir).metrics_token())
    try:
        stack.origin = start_server(
            "origin", ["origin", "--host", host, "--origin-port", str(origin_port), "--data-dir", str(data_dir),
                       "--workers", str(origin_workers), *origin_args],
            f"http://{host}:{origin_port}", log_dir, env)
        stack.servers.append(stack.origin)
        if start_edge:
            stack.edge = start_server(
                "edge", ["edge", "--host", host, "--edge-port", str(edge_port), "--data-dir", str(data_dir),
                         "--origin", stack.origin.url, "--workers", str(edge_workers), *edge_args],
                f"http://{host}:{edge_port}", log_dir, env)
            stack.servers.append(stack.edge)
        for server in stack.servers:
            wait_healthy(server)
        yield stack
    finally:
        for server in reversed(stack.servers):
            stop_server(server)
