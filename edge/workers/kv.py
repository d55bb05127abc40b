"""KVStore over a Workers KV namespace binding (``env.EAVES_KV``).

Values travel as bytes (``arrayBuffer`` on the way out, a ``Uint8Array`` on the way in) so answers are
never re-encoded. Limits are checked here first with ``shared.kv``'s rules, so a refusal reads the same
as in the emulator; a refusal by the binding itself (``KV PUT failed: 413 ...``) maps to the same error.
"""

from __future__ import annotations

import re
from typing import Any

from pyodide.ffi import JsException, to_js  # type: ignore[import-not-found]

from edge.workers._js import is_null, js_object, to_py
from shared.kv import (
    KVEntry,
    KVError,
    KVKey,
    KVLimitError,
    KVListPage,
    check_key,
    check_list_limit,
    check_metadata,
    check_ttl,
    check_value,
)

# "KV GET failed: 414 UTF-8 encoded length ..." -- the binding's refusals carry an HTTP status.
_REFUSAL = re.compile(r"KV \w+ failed: (4\d\d) ")


def _translate(exc: JsException, key: str) -> KVError:
    match = _REFUSAL.search(str(exc))
    if match and match.group(1) in {"400", "413", "414"}:
        return KVLimitError(f"Workers KV refused {key!r}: {exc}")
    return KVError(f"Workers KV failed for {key!r}: {exc}")


class WorkersKV:
    def __init__(self, binding: Any) -> None:
        self._kv = binding

    async def get(self, key: str) -> KVEntry | None:
        check_key(key)
        try:
            result = await self._kv.getWithMetadata(key, "arrayBuffer")
        except JsException as exc:
            raise _translate(exc, key) from exc
        if is_null(result.value):
            return None
        metadata = to_py(result.metadata)
        return KVEntry(bytes(result.value.to_bytes()), metadata if isinstance(metadata, dict) else None)

    async def put(self, key: str, value: bytes, *, expiration_ttl: int | None = None,
                  metadata: dict[str, Any] | None = None) -> None:
        check_key(key)
        check_value(value)
        check_ttl(expiration_ttl)
        check_metadata(metadata)
        options: dict[str, Any] = {}
        if expiration_ttl is not None:
            options["expirationTtl"] = expiration_ttl
        if metadata is not None:
            options["metadata"] = metadata
        try:
            await self._kv.put(key, to_js(bytes(value)), js_object(options))
        except JsException as exc:
            raise _translate(exc, key) from exc

    async def delete(self, key: str) -> None:
        check_key(key)
        try:
            await self._kv.delete(key)
        except JsException as exc:
            raise _translate(exc, key) from exc

    async def list(self, *, prefix: str = "", limit: int = 1000, cursor: str | None = None) -> KVListPage:
        check_list_limit(limit)
        options: dict[str, Any] = {"prefix": prefix, "limit": limit}
        if cursor:
            options["cursor"] = cursor
        try:
            result = to_py(await self._kv.list(js_object(options)))
        except JsException as exc:
            raise _translate(exc, prefix) from exc
        keys = [KVKey(k["name"], k.get("expiration"), k.get("metadata")) for k in result["keys"]]
        complete = bool(result["list_complete"])
        return KVListPage(keys, complete, None if complete else result.get("cursor"))

