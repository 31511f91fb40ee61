"""The checks every request passes before a recording is looked for, and the errors that answer it.

Shared with the relay (``streamscope.relay``): a Host that names a loopback address (421), a JSON
content type (415), a body under the size limit that arrives in time (413, 408), a JSON object (400).
Each error is in OpenAI's shape (``_error``).
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from .contract import _HOW_TO_LIST, MAX_BODY_BYTES, _error_content, _is_loopback

__all__: list[str] = []


def _error(
    status: int,
    message: str,
    *,
    kind: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
    close: bool = False,
) -> Response:
    """An error in OpenAI's shape; ``close``: the connection ends after it (the request was not read)."""
    headers = {"connection": "close"} if close else None
    return JSONResponse(_error_content(message, kind, code, param), status_code=status, headers=headers)


def _is_json(content_type: str | None) -> bool:
    return content_type is not None and content_type.partition(";")[0].strip().lower() == "application/json"


async def _read_body(request: Request, deadline: float) -> bytes | Response:
    """The request's body, or the error that answers it: too big (413) or too slow (408).

    A body over the limit is read to its end and dropped, piece by piece, so that the
    client, still sending, reads the 413 rather than a reset connection.
    """
    path = request.url.path
    body, too_big = bytearray(), False
    try:
        async with asyncio.timeout_at(deadline):
            async for piece in request.stream():
                if not too_big:
                    body += piece
                    if len(body) > MAX_BODY_BYTES:
                        too_big, body = True, bytearray()
    except TimeoutError:
        if not too_big:
            return _error(408, f"The body of POST {path} did not arrive in time.", close=True)
    except ClientDisconnect:
        return Response(status_code=400)  # nobody left to read it
    if too_big:
        limit = MAX_BODY_BYTES / 1024 / 1024
        return _error(
            413,
            f"The body of POST {path} is over the replay server's limit of {limit:g} MiB.",
            code="request_too_large",
            close=True,
        )
    return bytes(body)


# Only a \\u escape in the range D800-DFFF can put a lone surrogate into a body that decodes as UTF-8.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _parse_body(raw: bytes, path: str) -> dict[str, Any] | Response:
    """The request's JSON object, or the 400 that says why it is not one."""
    said = f"The body of POST {path}"
    try:
        body = json.loads(raw)
    except RecursionError:
        return _error(400, f"{said} is nested too deeply.")
    except UnicodeDecodeError as exc:
        return _error(400, f"{said} is not UTF-8 text ({exc.reason} at byte {exc.start}).")
    except json.JSONDecodeError as exc:
        return _error(400, f"{said} is not valid JSON ({exc}). {_HOW_TO_LIST}")
    except ValueError:  # the only other one json.loads raises: an integer too long to convert
        digits = sys.get_int_max_str_digits()
        return _error(400, f"{said} holds an integer of more than {digits} digits.")
    if not isinstance(body, dict):
        return _error(400, f"{said} must be a JSON object, got {type(body).__name__}.")
    if _SURROGATE_ESCAPE.search(raw):
        try:
            json.dumps(body, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            surrogate = exc.object[exc.start : exc.end].encode("utf-8", "backslashreplace").decode()
            return _error(400, f"{said} holds a lone surrogate ({surrogate}): it is not Unicode text.")
    return body


def _host_allowed(scope: dict[str, Any]) -> bool:
    """Whether the request names this server by a loopback name or address, or the address it came in on.

    A page that rebinds its own DNS name to 127.0.0.1 still sends that name as its Host.
    """
    host = next((v for k, v in scope["headers"] if k == b"host"), None)
    if host is None:  # HTTP/1.0 may omit it; browsers never do
        return True
    text = host.decode("latin-1").strip().lower()
    if text.startswith("["):
        name = text[1:].partition("]")[0]
    else:
        name = text.partition(":")[0] if text.count(":") == 1 else text
    local = (scope.get("server") or ("",))[0]
    return name == local or _is_loopback(name)


class _LoopbackHostsOnly:
    """ASGI middleware: a request whose Host names another machine is refused (DNS rebinding)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not _host_allowed(scope):
            message = (
                "The replay server answers only requests whose Host header names it by a loopback address "
                "(127.0.0.1, [::1], localhost): a web page cannot reach it through a DNS name of its own."
            )
            await _error(421, message, code="host_not_allowed")(scope, receive, send)
            return
        await self.app(scope, receive, send)
