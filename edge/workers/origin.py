"""OriginClient over the Fetch API (``js.fetch``: Workers' own, or Node's in the Pyodide test tier).

Streaming responses are passed through chunk by chunk as the origin sends them, never buffered: the
body is an async iterator over the response's ``ReadableStream``. ``timeout_s`` bounds the wait for the
response headers (and, for a buffered response, its body); an AbortController cancels the request when
it runs out. Failures become ``UpstreamTimeout`` / ``UpstreamError`` ``from`` the JS error.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

import js  # type: ignore[import-not-found]
from pyodide.ffi import JsException, create_once_callable, to_js  # type: ignore[import-not-found]

from edge.errors import UpstreamError, UpstreamTimeout
from edge.ports import OriginRequest, OriginResponse
from edge.workers._js import is_null, js_object

_NO_BODY_METHODS = frozenset({"GET", "HEAD"})


class _Deadline:
    """Aborts a fetch after ``seconds`` unless cleared first."""

    def __init__(self, seconds: float) -> None:
        self.controller = js.AbortController.new()
        self.expired = False
        self._timer = js.setTimeout(create_once_callable(self._expire), max(0, int(seconds * 1000)))

    def _expire(self) -> None:
        self.expired = True
        self.controller.abort()

    def clear(self) -> None:
        js.clearTimeout(self._timer)


class WorkersOrigin:
    def __init__(self, base_url: str, *, fetch: Callable[..., Any] | None = None) -> None:
        self._base = base_url.rstrip("/")
        self._fetch = fetch if fetch is not None else js.fetch

    async def send(self, request: OriginRequest) -> OriginResponse:
        url = self._base + request.path
        deadline = _Deadline(request.timeout_s)
        init: dict[str, Any] = {
            "method": request.method,
            "headers": js_object(dict(request.headers)),
            "signal": deadline.controller.signal,
        }
        if request.method.upper() not in _NO_BODY_METHODS:
            init["body"] = to_js(bytes(request.body))
        try:
            response = await self._fetch(url, js_object(init))
            headers = {str(k).lower(): str(v) for k, v in js.Object.fromEntries(response.headers).to_py().items()}
            if request.stream and not is_null(response.body):
                deadline.clear()
                return OriginResponse(response.status, headers, JsStreamBody(response.body, url))
            body = bytes((await response.arrayBuffer()).to_bytes())
        except JsException as exc:
            raise _translate(exc, url, deadline, request.timeout_s) from exc
        finally:
            if not request.stream:
                deadline.clear()
        return OriginResponse(response.status, headers, body)


def _translate(exc: JsException, url: str, deadline: _Deadline, timeout_s: float) -> UpstreamError:
    if deadline.expired:
        return UpstreamTimeout(f"The origin did not answer {url} within {timeout_s:g} s.", code="origin_timeout")
    return UpstreamError(f"The origin could not be reached at {url}: {exc}", code="origin_unreachable")


class JsStreamBody:
    """A streamed origin body: an async iterator of bytes for the core, and the JS ``ReadableStream``
    itself for the entry point, which can hand it to the client's Response untouched (no copy through
    Python) when the core passes the body on unchanged. Iterate it or pass it on, not both."""

    def __init__(self, stream: Any, url: str) -> None:
        self.js_stream = stream
        self._url = url
        self._chunks: AsyncGenerator[bytes, None] | None = None

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        if self._chunks is None:
            self._chunks = _read(self.js_stream, self._url)
        return await anext(self._chunks)

    async def aclose(self) -> None:
        if self._chunks is not None:
            await self._chunks.aclose()
        else:
            await self.js_stream.cancel()


async def _read(body: Any, url: str) -> AsyncGenerator[bytes, None]:
    reader = body.getReader()
    finished = False
    try:
        while True:
            try:
                chunk = await reader.read()
            except JsException as exc:
                raise UpstreamError(f"The origin's stream from {url} broke off: {exc}",
                                    code="origin_stream_broken") from exc
            if chunk.done:
                finished = True
                return
            yield bytes(chunk.value.to_bytes())
    finally:
        if not finished:
            # The client went away or the consumer stopped early: stop pulling from the origin. On a stream
            # that already broke, cancel() rejects with the same error: the UpstreamError above says it.
            with contextlib.suppress(JsException):
                await reader.cancel()
