"""Plain-data HTTP messages: what adapters hand to the core and what the core hands back.

Header names are lower-case, as ASGI and the Fetch API both deliver them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

Body = bytes | AsyncIterator[bytes]


@dataclass(slots=True)
class EdgeRequest:
    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes = b""
    query: str = ""
    client: str = ""


@dataclass(slots=True)
class EdgeResponse:
    status: int
    body: Body = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    # Work to finish after the response is sent (Workers' waitUntil); adapters schedule it.
    content_type: str = "application/json"

    @property
    def streaming(self) -> bool:
        return not isinstance(self.body, bytes | bytearray)

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


_JSON_SEPARATORS = (",", ":")


def json_bytes(payload: Any) -> bytes:
    return json.dumps(payload, separators=_JSON_SEPARATORS, ensure_ascii=False).encode()


def json_response(status: int, payload: Any, headers: list[tuple[str, str]] | None = None) -> EdgeResponse:
    return EdgeResponse(status, json_bytes(payload), headers if headers is not None else [])
