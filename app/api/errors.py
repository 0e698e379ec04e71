"""The API's refusals: one exception, one body shape, one status per code.

Every error response is ``{"error": {"code", "message"}}`` (the contract's
:class:`~app.contracts.ErrorResponse`, the same object ``incident-intel tool``
prints). The message says what to fix; it never carries a traceback or the
request's secrets.

==================  ======  ===================================================
code                status  when
==================  ======  ===================================================
unauthorized        401     no ``Authorization: Bearer``, or an unknown token
invalid_request     400     not JSON, unknown action, bad or missing fields
invalid_argument    400     the engine refuses an argument (week, profile)
forbidden           403     the role lacks an entitlement (named)
unknown_incident    404     ``correlate`` of, or a verdict on, an incident the
                            replica has not seen
not_found           404     no such route
method_not_allowed  405     the route exists, the method does not
request_timeout     408     head or body not received within its time limit
payload_too_large   413     body over ``max_body_bytes`` of ``rate_limits.yml``
rate_limited        429     over ``per_minute`` or ``engine_reads.per_token``
headers_too_large   431     a header line, the head or the header count over bound
not_ready           503     the replica is still recovering; retry later
unavailable         503     what was sent could not be recorded now (the broker
                            did not acknowledge a verdict or a receiver's
                            records); retry after ``Retry-After``
internal            503     an unexpected failure; the detail is only logged
timeout             504     over ``timeout_seconds`` for this action
==================  ======  ===================================================

``too_many_connections`` (429, with ``Retry-After``) is answered by the
connection guard when ``http.max_connections`` are open.

Unexpected failures answer 503, not 500: the cause is on our side and is
usually transient (a replica being rebuilt, a producer reconnecting), and 503
tells a well-behaved client to retry later.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from app.contracts import ErrorResponse, ToolError, dump_json

__all__ = ["STATUS", "ApiError", "error_response"]

STATUS: Mapping[str, int] = {
    "unauthorized": 401,
    "invalid_request": 400,
    "invalid_argument": 400,
    "forbidden": 403,
    "unknown_incident": 404,
    "not_found": 404,
    "method_not_allowed": 405,
    "request_timeout": 408,
    "payload_too_large": 413,
    "rate_limited": 429,
    "headers_too_large": 431,
    "not_ready": 503,
    "unavailable": 503,
    "internal": 503,
    "too_many_connections": 429,
    "timeout": 504,
}


class ApiError(Exception):
    """A refusal to turn into an error response; unknown codes answer 400."""

    def __init__(self, code: str, message: str,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    @property
    def status(self) -> int:
        return STATUS.get(self.code, 400)


def error_response(error: ApiError) -> web.Response:
    """The JSON body and status of a refusal."""
    body = dump_json(ErrorResponse(error=ToolError(code=error.code, message=error.message)))
    return web.Response(body=body, status=error.status, headers=error.headers,
                        content_type="application/json")
