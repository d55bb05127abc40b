"""Background over ``ctx.waitUntil``: work that finishes after the response is sent.

The ctx must be the one the SDK wrapped (``WorkerEntrypoint.__init__`` patches its ``waitUntil`` to take
a Python awaitable and keep it alive until it settles). A failure is logged, never raised into the
runtime: the response is already gone and an unhandled rejection would only be noise.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

log = logging.getLogger("eaves.edge.background")


class WorkersBackground:
    def __init__(self, ctx: Any) -> None:
        self._ctx = ctx

    def defer(self, work: Awaitable[Any]) -> None:
        self._ctx.waitUntil(asyncio.ensure_future(_logged(work)))


async def _logged(work: Awaitable[Any]) -> None:
    try:
        await work
    except Exception:
        log.exception("background work failed")
