"""The relay's web app: a page, and a POST that relays a chat stream from the backend to it as SSE.

The routes are relative to wherever the app is mounted, so the page works at ``http://127.0.0.1:PORT/``
and behind jupyter-server-proxy at ``/proxy/PORT/`` alike:

- ``GET /``: the page (``page.html``);
- ``POST /chat`` with ``{"prompt": "..."}``: a ``text/event-stream`` of the backend's own events, byte
  for byte, each forwarded as it arrives; a comment line ``: heartbeat`` whenever nothing arrived for
  ``heartbeat_s`` (between events only); then one event of the relay's own, ``event: relay-done``, or
  ``event: relay-error`` with an OpenAI-shaped error when the upstream request failed. The response's
  ``x-streamscope-relay`` header (and the last event's data) name the relayed request;
- ``GET /clock``: the kernel's clock (``time.monotonic()``), for the page to map ``performance.now()``
  onto it;
- ``POST /painted`` with ``{"request": N, "painted": [[event, kernel_s], ...], "shown": [...], "rtt_s": x}``:
  when the page painted each event, and when it set the text, on the kernel's clock.

The request limits are the replay server's (the same code): a JSON body only (415), at most 4 MiB
(413), a JSON object (400), and a Host header that names a loopback address (421). The same routes
are served under a secret path too (``/SECRET/...``), where any Host is taken: jupyter-server-proxy
on a hub passes the hub's own name on.

When the page goes away (a Stop button aborting its ``fetch()``, a closed tab), Starlette cancels the
response, and leaving the ``async with`` closes the upstream response: the backend stops sending.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from importlib import resources
from typing import Any

import openai
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route

from ..replay.checks import _error, _is_json, _LoopbackHostsOnly, _parse_body, _read_body
from ..replay.contract import _error_content
from ..sse import SSEDecoder
from .log import RelayedRequest, RelayLog

RELAY_HEADER = "x-streamscope-relay"
HEARTBEAT = b": heartbeat\n\n"
# Every hop that could buffer is told not to: browsers and proxies (no-cache), nginx (X-Accel-Buffering).
SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
_EVENT_ENDS = (b"\n\n", b"\r\r", b"\r\n\r\n")
_BODY_TIMEOUT_S = 10.0


def _frame(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def _upstream_error(exc: Exception) -> dict[str, Any]:
    """What the page is told when the upstream request failed: the backend's own error when it sent one."""
    if isinstance(exc, openai.APIStatusError) and isinstance(exc.body, dict):
        body = exc.body.get("error", exc.body) if isinstance(exc.body.get("error"), dict) else exc.body
        message = f"The backend answered {exc.status_code}: {body.get('message', exc.message)}"
        return _error_content(message, "upstream_error", str(body.get("code") or exc.status_code))
    message = f"The upstream request failed: {type(exc).__name__}: {exc}".splitlines()[0]
    return _error_content(message, "upstream_error", None)


def _delta_text(data: str) -> str:
    """The text a chat chunk adds (``choices[0].delta.content``), or '' for any other event."""
    try:
        chunk = json.loads(data)
        return chunk["choices"][0]["delta"].get("content") or ""
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return ""


async def _relayed(
    upstream: openai.AsyncOpenAI, body: dict[str, Any], record: RelayedRequest, heartbeat_s: float
) -> AsyncIterator[bytes]:
    """The upstream stream's bytes as they arrive, heartbeats in its pauses, then the relay's last event."""
    decoder, tail = SSEDecoder(), b"\n\n"
    pending: asyncio.Future[bytes | None] | None = None
    try:
        record.started = time.monotonic()
        async with upstream.chat.completions.with_streaming_response.create(**body) as response:
            record.headers = response.headers
            pieces = response.iter_bytes()
            while True:
                # Wait for the next piece without cancelling the read when a heartbeat is due.
                pending = pending or asyncio.ensure_future(anext(pieces, None))
                done, _ = await asyncio.wait({pending}, timeout=heartbeat_s)
                if not done:
                    if tail.endswith(_EVENT_ENDS):  # never inside an event
                        yield HEARTBEAT
                        record.heartbeats.append(time.monotonic())
                    continue
                piece, pending = pending.result(), None
                if piece is None:
                    break
                events = decoder.feed(piece)
                tail = (tail + piece)[-4:]
                # Timed as it is handed to the ASGI server's send(), which writes it to the socket at once.
                record.add(events, time.monotonic())
                yield piece
        record.state = "complete"
        yield _frame("relay-done", {"request": record.id, "events": len(record.forwarded)})
    except Exception as exc:  # any upstream failure becomes the page's error event, never a traceback
        record.state = "upstream failed"
        record.error = _upstream_error(exc)
        yield _frame("relay-error", {"request": record.id, **record.error})
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
        if record.state == "relaying":
            record.state = "client disconnected"
        record.ended = time.monotonic()


class _HostCheckedUnlessSecret:
    """ASGI middleware: the replay server's Host check, except under the secret path.

    Through jupyter-server-proxy on a hub, the Host header names the hub, not a loopback address, and
    the replay server's check (against DNS rebinding) would refuse the page. A page that knows the
    relay's secret path (shown only in the notebook's output) was not led there by a rebinding site.
    """

    def __init__(self, app: Any, secret: str) -> None:
        self.app, self.checked, self.prefix = app, _LoopbackHostsOnly(app), f"/{secret}/"

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        secret = scope["type"] == "http" and scope["path"].startswith(self.prefix)
        await (self.app if secret else self.checked)(scope, receive, send)


def create_app(
    log: RelayLog,
    upstream: Callable[[], openai.AsyncOpenAI],
    request: dict[str, Any],
    *,
    secret: str,
    heartbeat_s: float,
    middleware: Sequence[Middleware] = (),
) -> Starlette:
    """The relay; ``request`` holds the chat request's fixed fields, the page adds the prompt."""
    page = resources.files(__package__).joinpath("page.html").read_text(encoding="utf-8")

    async def json_body(request: Request) -> dict[str, Any] | Response:
        path = request.url.path
        if not _is_json(request.headers.get("content-type")):
            message = f"POST {path} takes a JSON body with the header content-type: application/json."
            return _error(415, message, close=True)
        raw = await _read_body(request, time.monotonic() + _BODY_TIMEOUT_S)
        return raw if isinstance(raw, Response) else _parse_body(raw, path)

    async def show_page(_: Request) -> Response:
        return HTMLResponse(page, headers={"cache-control": "no-cache"})

    async def chat(http_request: Request) -> Response:
        body = await json_body(http_request)
        if isinstance(body, Response):
            return body
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            message = 'POST /chat takes {"prompt": "..."}: a non-empty string.'
            return _error(400, message, code="invalid_prompt")
        record = log.new(prompt)
        chat_request = {**request, "messages": [{"role": "user", "content": prompt}], "stream": True}
        events = _relayed(upstream(), chat_request, record, heartbeat_s)
        headers = {**SSE_HEADERS, RELAY_HEADER: str(record.id)}
        return StreamingResponse(events, media_type="text/event-stream", headers=headers)

    async def clock(_: Request) -> Response:
        log.saw_page()
        return JSONResponse({"t": time.monotonic()}, headers={"cache-control": "no-store"})

    async def painted(http_request: Request) -> Response:
        body = await json_body(http_request)
        if isinstance(body, Response):
            return body
        try:
            log.painted(body["request"], body["painted"], body.get("rtt_s"), shown=body.get("shown"))
        except (KeyError, TypeError, ValueError) as exc:
            return _error(400, f"POST /painted takes {{request, painted: [[event, kernel_s], ...]}}: {exc}.")
        return JSONResponse({"ok": True})

    async def http_error(http_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        asked = f"{http_request.method} {http_request.url.path[:80]}"
        served = "GET /, POST /chat, GET /clock, POST /painted"
        return _error(exc.status_code, f"The relay does not answer {asked}: it answers {served}.")

    async def server_error(http_request: Request, exc: Exception) -> Response:
        message = f"The relay failed on {http_request.method} {http_request.url.path}: {type(exc).__name__}."
        return _error(500, message, kind="server_error")

    routes = [
        Route("/", show_page, methods=["GET"]),
        Route("/chat", chat, methods=["POST"]),
        Route("/clock", clock, methods=["GET"]),
        Route("/painted", painted, methods=["POST"]),
    ]
    return Starlette(
        routes=[*routes, Mount(f"/{secret}", routes=routes)],
        middleware=[Middleware(_HostCheckedUnlessSecret, secret=secret), *middleware],
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )
