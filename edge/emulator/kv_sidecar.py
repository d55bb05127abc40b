"""The local KV over HTTP, for the edge running in Pyodide under Node (``eaves edge --runtime pyodide``).

Node cannot open the LMDB file the origin writes answers into, so this small ASGI app serves it on
127.0.0.1 and ``eaves/pyodide/kv_sidecar.mjs`` turns it back into a Workers KV binding. Workers KV's
limits are enforced here by ``shared.kv_lmdb`` (the same rules as everywhere else), and a refusal is
answered with the binding's own wording (``KV PUT failed: 413 ...``) so the Workers adapter maps it
exactly as it would in production.

    GET    /kv/value?key=K                 200 value (metadata as base64url JSON in x-kv-metadata) | 404
    PUT    /kv/value?key=K[&ttl=N]         body = value, x-kv-metadata as above            -> 204
    DELETE /kv/value?key=K                                                                  -> 204
    GET    /kv/list?prefix=P&limit=N[&cursor=C]   {"keys": [...], "list_complete", "cursor"}
    GET    /healthz
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from shared import kv as kv_rules
from shared.kv_lmdb import LmdbKV

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

METADATA_HEADER = "x-kv-metadata"


def encode_metadata(metadata: dict[str, Any] | None) -> str:
    raw = json.dumps(metadata, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_metadata(text: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))


class KVSidecar:
    def __init__(self, path: Path) -> None:
        self.store = LmdbKV(path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        method, path = scope["method"], scope["path"]
        query = {k: v[-1] for k, v in parse_qs(scope["query_string"].decode(), keep_blank_values=True).items()}
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        verb = {"GET": "GET", "PUT": "PUT", "DELETE": "DELETE"}.get(method, method)
        try:
            status, out, extra = await asyncio.to_thread(self._dispatch, method, path, query, headers, body)
        except kv_rules.KVLimitError as exc:
            status, out, extra = _refusal(str(verb), exc)
        except (kv_rules.KVError, ValueError) as exc:
            status, out, extra = 500, f"KV {verb} failed: 500 {exc}".encode(), {}
        response_headers = [(b"content-length", str(len(out)).encode())]
        response_headers += [(k.encode(), v.encode()) for k, v in extra.items()]
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": out})

    def _dispatch(self, method: str, path: str, query: dict[str, str], headers: dict[str, str],
                  body: bytes) -> tuple[int, bytes, dict[str, str]]:
        if path == "/healthz":
            return 200, b'{"status":"ok"}', {"content-type": "application/json"}
        if path == "/kv/list" and method == "GET":
            limit = int(query.get("limit") or 1000)
            items, cursor = self.store.list(prefix=query.get("prefix", ""), limit=limit, cursor=query.get("cursor"))
            keys = [{"name": name, **({"expiration": int(expires)} if expires else {}),
                     **({"metadata": metadata} if metadata is not None else {})} for name, expires, metadata in items]
            payload = {"keys": keys, "list_complete": cursor is None, **({"cursor": cursor} if cursor else {})}
            return 200, json.dumps(payload).encode(), {"content-type": "application/json"}
        if path != "/kv/value" or "key" not in query:
            return 404, b"KV: no such route (GET/PUT/DELETE /kv/value?key=, GET /kv/list)", {}
        key = query["key"]
        if method == "GET":
            found = self.store.get(key)
            if found is None:
                return 404, b"", {}
            value, metadata = found
            return 200, value, {METADATA_HEADER: encode_metadata(metadata)}
        if method == "PUT":
            raw = headers.get(METADATA_HEADER)
            metadata = decode_metadata(raw) if raw else None
            ttl = int(query["ttl"]) if query.get("ttl") else None
            self.store.put(key, body, expiration_ttl=ttl, metadata=metadata)
            return 204, b"", {}
        if method == "DELETE":
            self.store.delete(key)
            return 204, b"", {}
        return 405, b"KV: GET, PUT or DELETE", {}


def _refusal(verb: str, exc: kv_rules.KVLimitError) -> tuple[int, bytes, dict[str, str]]:
    message = str(exc)
    status = 414 if "key" in message and "bytes" in message else 413 if "bytes" in message else 400
    return status, f"KV {verb} failed: {status} {message}".encode(), {}
