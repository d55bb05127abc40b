"""Drive an HTTP server with wrk (Debian package ``wrk``): POST bodies, a bearer key, fixed concurrency.

The Lua script is static: it defines no ``request()`` and no ``response()`` function, so wrk builds each
thread's request once and sends it from C, never calling Lua per request or per response (a ``response()``
callback alone capped wrk near 9k requests/s on one core here, below what the ceiling app serves). The
rotation of bodies comes from the threads: thread *i* sends body *i*, so ``len(bodies)`` threads share the
connections and the server sees every body. ``done()`` prints one JSON line with wrk's own counts and
latency percentiles (µs); the run also reports wrk's own CPU time, to tell when wrk was the limit.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from typing import Any

SCRIPT = r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("EAVES_WRK_KEY")
local threads = 0
function setup(thread)  -- main state, once per thread: hand each its index
  threads = threads + 1
  thread:set("index", threads)
end
function init(args)  -- each thread's state, before wrk builds its one static request
  local bodies = {}
  for line in io.lines(os.getenv("EAVES_WRK_BODIES")) do bodies[#bodies + 1] = line end
  wrk.body = bodies[((index or 1) - 1) % #bodies + 1]
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'EAVES_WRK {"requests":%d,"duration_us":%d,"socket_errors":%d,"non2xx":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f,"max_us":%d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max))
end
"""


class WrkError(RuntimeError):
    """wrk is missing or its run failed; the message says which and how to fix it."""


@dataclass
class WrkResult:
    requests: int
    duration_s: float
    socket_errors: int
    non2xx: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    wrk_cpu_s: float = 0.0  # wrk's own user + system CPU time over the run
    threads: int = 1

    @property
    def wrk_cpu_share(self) -> float:
        """wrk's CPU time over the run's wall time: 1.0 means wrk kept its core busy (it may be the limit)."""
        return self.wrk_cpu_s / self.duration_s if self.duration_s else 0.0

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "duration_s": round(self.duration_s, 2), "rps": round(self.rps, 1),
                "p50_ms": round(self.p50_ms, 3), "p90_ms": round(self.p90_ms, 3), "p99_ms": round(self.p99_ms, 3),
                "mean_ms": round(self.mean_ms, 3), "max_ms": round(self.max_ms, 3),
                "socket_errors": self.socket_errors, "non2xx": self.non2xx, "threads": self.threads,
                "wrk_cpu_s": round(self.wrk_cpu_s, 3), "wrk_cpu_share": round(self.wrk_cpu_share, 3)}


def wrk_path() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise WrkError("wrk is not installed: run scripts/setup --bench (or: apt-get install -y wrk)")
    return path


def run_wrk(url: str, key: str, bodies: list[bytes], *, duration_s: float, connections: int,
            cpus: set[int] | None = None, timeout_s: float = 5.0) -> WrkResult:
    """One wrk run, one thread per body (at most one per connection); raises WrkError if it fails or prints
    no result."""
    if not 1 <= duration_s <= 600:
        raise WrkError("a wrk run must last between 1 and 600 seconds")
    if not bodies:
        raise WrkError("give wrk at least one request body")
    if any(b"\n" in body for body in bodies):
        raise WrkError("request bodies must be single-line JSON")
    threads = max(1, min(len(bodies), connections))
    with tempfile.TemporaryDirectory(prefix="eaves-wrk-") as tmp:
        script = os.path.join(tmp, "post.lua")
        with open(script, "w") as handle:
            handle.write(SCRIPT)
        bodies_path = os.path.join(tmp, "bodies.jsonl")
        with open(bodies_path, "wb") as handle:
            handle.write(b"\n".join(bodies[:threads]) + b"\n")
        env = {**os.environ, "EAVES_WRK_KEY": key, "EAVES_WRK_BODIES": bodies_path}
        command = [wrk_path(), f"-t{threads}", f"-c{connections}", f"-d{duration_s:g}s", f"--timeout={timeout_s:g}s",
                   "-s", script, url]

        def pin() -> None:
            if cpus:
                os.sched_setaffinity(0, cpus)

        stdout, stderr, returncode, cpu_s = _run_measured(command, env, duration_s + 60, pin if cpus else None)
    for line in stdout.splitlines():
        if line.startswith("EAVES_WRK "):
            raw = json.loads(line[len("EAVES_WRK "):])
            return WrkResult(raw["requests"], raw["duration_us"] / 1e6, raw["socket_errors"], raw["non2xx"],
                             raw["p50_us"] / 1000, raw["p90_us"] / 1000, raw["p99_us"] / 1000, raw["mean_us"] / 1000,
                             raw["max_us"] / 1000, cpu_s, threads)
    raise WrkError(f"wrk printed no result (exit {returncode}):\n{stdout}\n{stderr}")


def _run_measured(command: list[str], env: dict[str, str], timeout_s: float,
                  preexec: Any) -> tuple[str, str, int, float]:
    """Run ``command`` to the end and return its output, exit code and CPU seconds (from wait4's rusage)."""
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=preexec)
    out: dict[str, str] = {}

    def read(name: str, stream: Any) -> None:
        out[name] = stream.read()

    readers = [threading.Thread(target=read, args=(name, stream), daemon=True)
               for name, stream in (("stdout", proc.stdout), ("stderr", proc.stderr))]
    for reader in readers:
        reader.start()
    timer = threading.Timer(timeout_s, proc.kill)
    timer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    for reader in readers:
        reader.join()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    return out.get("stdout", ""), out.get("stderr", ""), proc.returncode, usage.ru_utime + usage.ru_stime
