"""``GET /v1/models`` and ``GET /v1/models/{id}``: the models the origin serves, behind the edge's auth.

Chat UIs and SDK helpers list models at start-up, so the list is asked of the origin (which knows its
generator's model names) at most once per ``ttl_s`` per isolate, and a list seen before stands in while
the origin is unreachable: a model list a few minutes old is still right, a start-up that fails is not.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

from edge import errors, streaming
from edge.http import EdgeResponse, json_response
from edge.ports import OriginResponse

PATH = "/v1/models"
ORIGIN_PATH = "/v1/models"
DEFAULT_TTL_S = 60.0

Fetch = Callable[[], Awaitable[OriginResponse]]


def is_models_path(path: str) -> bool:
    return path == PATH or path.startswith(PATH + "/")


class ModelCatalog:
    """The origin's model list, kept for ``ttl_s`` seconds."""

    def __init__(self, monotonic: Callable[[], float], ttl_s: float = DEFAULT_TTL_S) -> None:
        self._monotonic = monotonic
        self.ttl_s = ttl_s
        self._models: list[dict[str, Any]] | None = None
        self._fetched_at = 0.0

    async def serve(self, path: str, fetch: Fetch) -> EdgeResponse:
        models = await self._list(fetch)
        if path == PATH:
            return json_response(200, {"object": "list", "data": models})
        model_id = unquote(path[len(PATH) + 1:])
        for model in models:
            if model.get("id") == model_id:
                return json_response(200, model)
        raise errors.NotFound(f"the model {model_id!r} does not exist here; GET {PATH} lists the models served",
                              code="model_not_found", param="model")

    async def _list(self, fetch: Fetch) -> list[dict[str, Any]]:
        if self._models is not None and self._monotonic() - self._fetched_at < self.ttl_s:
            return self._models
        try:
            upstream = await fetch()
            body = await streaming.collect(upstream.body)
            if upstream.status != 200:
                raise errors.UpstreamError(f"the origin answered the model list with status {upstream.status}",
                                           code="origin_error")
            data = json.loads(body).get("data")
            if not isinstance(data, list) or not all(isinstance(m, dict) and isinstance(m.get("id"), str)
                                                     for m in data):
                raise errors.UpstreamError("the origin's model list is malformed", code="origin_error")
        except (ValueError, AttributeError) as exc:
            if self._models is not None:
                return self._models
            raise errors.UpstreamError("the origin's model list is not JSON", code="origin_error") from exc
        except errors.UpstreamError:
            if self._models is not None:
                return self._models  # stale but right: the models an origin serves rarely change
            raise
        self._models, self._fetched_at = data, self._monotonic()
        return data
