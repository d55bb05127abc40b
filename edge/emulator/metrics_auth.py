"""Who may read ``/metrics`` on the emulator: whoever holds the operator's metrics token.

The emulator serves ``/metrics`` on the client-facing port (one port per `eaves edge`, shared by its
worker processes), so the scrape needs ``Authorization: Bearer <token>``, the token that
``shared.local_stack.LocalStack.metrics_token`` derives (or ``EAVES_METRICS_TOKEN``). A client's API key
never opens it, and without the token the answer is a 401 that names what is missing.
"""

from __future__ import annotations

from edge import errors
from edge.http import EdgeResponse
from edge.ids import REQUEST_IDS
from shared.local_stack import bearer_matches


def metrics_token_matches(raw_headers: list[tuple[bytes, bytes]], token: str) -> bool:
    given = [value for name, value in raw_headers if name == b"authorization"]
    return len(given) == 1 and bearer_matches(given[0], token)


def metrics_refused() -> EdgeResponse:
    response = errors.Unauthorized("/metrics needs the operator's metrics token: 'Authorization: Bearer <token>' "
                                   "(eaves up prints it)", code="metrics_token_required").to_response()
    response.headers.append(("x-request-id", REQUEST_IDS.new()))
    return response
