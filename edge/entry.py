"""The Cloudflare Python Worker's entry point (wrangler.toml ``main``).

Placeholder until the edge core's Workers wiring lands: it answers every request with a JSON health
answer, so the bundle, the bindings and the deploy dry run can be proven now. Only this module and
``edge.workers`` may import ``js``, ``pyodide`` or ``workers``.
"""

from __future__ import annotations

from typing import Any

from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request: Any) -> Response:
        return Response.json({"status": "ok", "service": "eaves-edge", "runtime": "workers"})
