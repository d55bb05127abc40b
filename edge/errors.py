"""The edge's error hierarchy. Every error maps to one HTTP status and an OpenAI-style JSON body.

    EdgeError
    ├── BadRequest (400)          malformed JSON, wrong fields, prompt too long, conflicting credentials
    │   ├── PayloadTooLarge (413)
    │   ├── RequestHeadersTooLarge (431) / RequestTimeout (408)   (the local servers' head limits)
    │   └── UnsendableRequest (400) the request cannot be put on the wire to the origin (the caller's
    │                                data, e.g. a tenant name no HTTP header can carry): never an origin failure
    ├── UnsupportedMediaType (415)
    ├── Unauthorized (401)        missing, unknown, expired or forged credentials
    ├── Forbidden (403)
    ├── NotFound (404) / MethodNotAllowed (405)
    ├── RateLimited (429)         carries Retry-After and RateLimit-* headers
    ├── Blocked (403)             the routing policy refused the prompt
    └── UpstreamError (502)       origin unreachable or broken
        ├── UpstreamTimeout (504)
        └── Unavailable (503)     origin down and no fallback; carries Retry-After
"""

from __future__ import annotations

from typing import ClassVar

from edge.http import EdgeResponse, json_response


class EdgeError(Exception):
    status: ClassVar[int] = 500
    error_type: ClassVar[str] = "server_error"

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None,
                 headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.error_type
        self.param = param
        self.headers = headers or []

    def to_response(self) -> EdgeResponse:
        body = {"error": {"message": self.message, "type": self.error_type, "code": self.code,
                          "param": self.param}}
        return json_response(self.status, body, list(self.headers))


class BadRequest(EdgeError):
    status = 400
    error_type = "invalid_request_error"


class PayloadTooLarge(BadRequest):
    status = 413


class RequestHeadersTooLarge(BadRequest):
    status = 431


class RequestTimeout(BadRequest):
    status = 408


class UnsendableRequest(BadRequest):
    pass


class UnsupportedMediaType(BadRequest):
    status = 415


class Unauthorized(EdgeError):
    status = 401
    error_type = "authentication_error"

    def __init__(self, message: str, *, code: str = "invalid_credentials", scheme: str = "Bearer") -> None:
        # RFC 6750 §3: the challenge names the error so a client can tell expiry from a bad key.
        challenge = f'{scheme} realm="eaves", error="invalid_token", error_description="{_quote(message)}"'
        super().__init__(message, code=code, headers=[("www-authenticate", challenge)])


class Forbidden(EdgeError):
    status = 403
    error_type = "permission_error"


class NotFound(EdgeError):
    status = 404
    error_type = "not_found_error"


class MethodNotAllowed(EdgeError):
    status = 405
    error_type = "invalid_request_error"


class RateLimited(EdgeError):
    status = 429
    error_type = "rate_limit_error"


class Blocked(EdgeError):
    status = 403
    error_type = "content_policy_error"


class UpstreamError(EdgeError):
    status = 502
    error_type = "upstream_error"


class UpstreamTimeout(UpstreamError):
    status = 504
    error_type = "upstream_timeout"


class Unavailable(UpstreamError):
    status = 503
    error_type = "service_unavailable"


def _quote(text: str) -> str:
    # A header value must be Latin-1 to be sent at all, and messages quote untrusted input (a token's
    # kid, alg or tier): anything outside printable ASCII is escaped so the 401 itself can never fail.
    text = text.replace("\\", "\\\\").replace('"', "'")
    if text.isascii() and text.isprintable():
        return text
    return "".join(c if " " <= c <= "~" else f"\\u{ord(c):04x}" for c in text)
