"""The Worker's ``env`` as the workers SDK presents it, for tests inside Pyodide."""

from __future__ import annotations

from typing import Any

from eaves_fakes import ExecutionContext

from edge.workers._js import js_object


def sdk_env(**values: Any) -> Any:
    """``self.env`` of a WorkerEntrypoint built on ``values``: the SDK's ``_EnvWrapper``, which wraps each
    binding by its JS constructor name (``KvNamespace``, ``Ratelimit``, ...) exactly as in workerd."""
    from workers import WorkerEntrypoint

    class Probe(WorkerEntrypoint):  # type: ignore[misc]
        pass

    return Probe(ExecutionContext.new(), js_object(values)).env
