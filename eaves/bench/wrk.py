"""Drive an HTTP server with wrk (Debian package ``wrk``): POST bodies, a bearer key, fixed concurrency.

The Lua script rotates through the given bodies (so the server sees several distinct cached prompts)
and prints one JSON line with wrk's own counts and latency percentiles (µs) when the run ends.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from typing import Any

_SCRIPT = r"""
local bodies = {}
for line in io.lines(os.getenv("EAVES_WRK_BODIES")) do bodies[#bodies + 1] = line end
local key = os.getenv("EAVES_WRK_KEY")
local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. key}
local requests = {}
for i, body in ipairs(bodies) do requests[i] = wrk.format("POST", nil, headers, body) end
local n = 0
request = function()
  n = n + 1
  return requests[(n % #requests) + 1]
end
local statuses = {}
response = function(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
done = function(summary, latency, requests)
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

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "duration_s": round(self.duration_s, 2), "rps": round(self.rps, 1),
                "p50_ms": round(self.p50_ms, 3), "p90_ms": round(self.p90_ms, 3), "p99_ms": round(self.p99_ms, 3),
                "mean_ms": round(self.mean_ms, 3), "max_ms": round(self.max_ms, 3),
                "socket_errors": self.socket_errors, "non2xx": self.non2xx}


def wrk_path() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise WrkError("wrk is not installed: run scripts/setup --bench (or: apt-get install -y wrk)")
    return path


def run_wrk(url: str, key: str, bodies: list[bytes], *, duration_s: float, connections: int, threads: int = 1,
            cpus: set[int] | None = None, timeout_s: float = 5.0) -> WrkResult:
    """One wrk run; raises WrkError if it fails or prints no result."""
    if not 1 <= duration_s <= 600:
        raise WrkError("a wrk run must last between 1 and 600 seconds")
    if any(b"\n" in body for body in bodies):
        raise WrkError("request bodies must be single-line JSON")
    with tempfile.TemporaryDirectory(prefix="eaves-wrk-") as tmp:
        script = os.path.join(tmp, "post.lua")
        with open(script, "w") as handle:
            handle.write(_SCRIPT)
        bodies_path = os.path.join(tmp, "bodies.jsonl")
        with open(bodies_path, "wb") as handle:
            handle.write(b"\n".join(bodies) + b"\n")
        env = {**os.environ, "EAVES_WRK_KEY": key, "EAVES_WRK_BODIES": bodies_path}
        command = [wrk_path(), f"-t{threads}", f"-c{connections}", f"-d{duration_s:g}s", f"--timeout={timeout_s:g}s",
                   "-s", script, url]

        def pin() -> None:
            if cpus:
                os.sched_setaffinity(0, cpus)

        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=duration_s + 60,
                              preexec_fn=pin if cpus else None, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith("EAVES_WRK "):
            raw = json.loads(line[len("EAVES_WRK "):])
            return WrkResult(raw["requests"], raw["duration_us"] / 1e6, raw["socket_errors"], raw["non2xx"],
                             raw["p50_us"] / 1000, raw["p90_us"] / 1000, raw["p99_us"] / 1000, raw["mean_us"] / 1000,
                             raw["max_us"] / 1000)
    raise WrkError(f"wrk printed no result (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
