"""KVStore over a Workers KV namespace binding (``env.EAVES_KV``), as the workers SDK presents it.

The SDK wraps every binding whose JS constructor is ``KvNamespace`` (``workers.rpc._EnvWrapper``): it
converts the arguments with ``python_to_rpc`` and each result with ``to_py()``. So this adapter speaks
Python to the binding, never JS: ``getWithMetadata(key, "arrayBuffer")`` answers a dict whose ``value``
is a ``memoryview`` (or ``None`` for a miss), and ``put`` takes the value as ``bytes``, which the SDK
hands to ``to_js`` in one buffer copy. (A ``memoryview`` or a JS ``Uint8Array`` would be walked element
by element by the SDK's argument check, ``_raise_on_disabled_type``; a ``bytearray`` is refused.) A raw
JS binding is refused at construction: production never hands one over, and a stand-in that skipped
the wrapper would let tests pass that the deployed Worker fails (issue 14).

Values travel as bytes so answers are never re-encoded. Limits are checked here first with
``shared.kv``'s rules, so a refusal reads the same as in the emulator; a refusal by the binding itself
(``KV PUT failed: 413 ...``) maps to the same error.
"""

from __future__ import annotations

import re
from typing import Any

from pyodide.ffi import JsException, JsProxy  # type: ignore[import-not-found]

from edge.workers._js import is_null
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


def _plain(value: Any) -> Any:
    """The SDK's ``JsDict`` (a dict with attribute access) and lists of them as plain dicts and lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return None if is_null(value) else value


class WorkersKV:
    def __init__(self, binding: Any) -> None:
        if isinstance(binding, JsProxy):
            raise TypeError("WorkersKV takes the KV binding as the workers SDK presents it (self.env.EAVES_KV "
                            "of a WorkerEntrypoint, or workers.env), not the raw JS object")
        self._kv = binding

    async def get(self, key: str) -> KVEntry | None:
        check_key(key)
        try:
            result = await self._kv.getWithMetadata(key, "arrayBuffer")
        except JsException as exc:
            raise _translate(exc, key) from exc
        value = result["value"]
        if is_null(value):
            return None
        if not isinstance(value, memoryview | bytes):
            raise KVError(f"Workers KV answered {key!r} with {type(value).__name__}, not the bytes of an "
                          "ArrayBuffer: has the workers SDK changed how it converts results?")
        metadata = _plain(result["metadata"])
        return KVEntry(bytes(value), metadata if isinstance(metadata, dict) else None)

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
            await self._kv.put(key, bytes(value), options)
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
            result = _plain(await self._kv.list(options))
        except JsException as exc:
            raise _translate(exc, prefix) from exc
        keys = [KVKey(k["name"], k.get("expiration"), k.get("metadata")) for k in result["keys"]]
        complete = bool(result["list_complete"])
        return KVListPage(keys, complete, None if complete else result.get("cursor"))

