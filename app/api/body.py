"""Request bodies: read at most ``max_body_bytes``, then decode JSON.

The limit is enforced while reading, so a client that lies about (or omits)
``Content-Length`` still cannot make the server buffer more than the limit;
a client that sends it too slowly gets 408 after ``body_timeout_seconds``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

from .errors import ApiError

__all__ = ["read_json"]


async def read_limited(request: web.Request, max_bytes: int, seconds: float) -> bytes:
    """The body, or 413 as soon as it is known to exceed ``max_bytes``, or 408."""
    try:
        async with asyncio.timeout(seconds):
            return await _read_at_most(request, max_bytes)
    except TimeoutError:
        raise ApiError("request_timeout", f"request body not received within {seconds:g} s "
                                          "(body_timeout_seconds)") from None


async def _read_at_most(request: web.Request, max_bytes: int) -> bytes:
    too_large = ApiError("payload_too_large",
                         f"request body exceeds {max_bytes} bytes (max_body_bytes)")
    if request.content_length is not None and request.content_length > max_bytes:
        raise too_large
    data = bytearray()
    while len(data) <= max_bytes:
        chunk = await request.content.read(max_bytes + 1 - len(data))
        if not chunk:
            break
        data += chunk
    if len(data) > max_bytes:
        raise too_large
    return bytes(data)


async def read_json(request: web.Request, max_bytes: int, seconds: float) -> Any:
    """The decoded JSON body; 400 ``invalid_request`` when it is not JSON."""
    raw = await read_limited(request, max_bytes, seconds)
    if not raw.strip():
        raise ApiError("invalid_request", "request body is empty; send the call as JSON")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError("invalid_request", f"request body is not JSON: {exc}") from None
