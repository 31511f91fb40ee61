"""The starlette app: reads and checks a request, finds its recording, and answers it."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ..errors import BackendError
from ..matching import api_path
from .contract import (
    _HOW_TO_GO_LIVE,
    _HOW_TO_LIST,
    _MATCH_RULE,
    _QUOTE_CHARS,
    ARRIVAL_KEY,
    ENDPOINTS,
    FAULT_HEADER,
    MAX_BODY_BYTES,
    NOTE_HEADER,
    REQUEST_ID_HEADER,
    REQUEST_TIMEOUT_S,
    RESUME_PATH,
    SENT_LOG_PATH,
    SPEED_HEADER,
    TRANSPORT_KEY,
    Fault,
    _error_content,
    _is_loopback,
    _short,
    check_speed,
)
from .index import CLOSEST_NAMED, Match, RecordingIndex
from .resume import ResumeError, created_in_background
from .sending import _replay_headers, _Sent, _sent_events, _sleep_until, _Stats
from .worker import BodyWorker, cheap

__all__ = [
    "create_app",
    "match_body",
]


def _prompt_excerpt(body: dict[str, Any], words: int = 8) -> str:
    """The first words of what the request asks, from messages, prompt or input."""
    asked: Any = body.get("messages") or body.get("prompt") or body.get("input")
    if isinstance(asked, list) and asked:  # the last user turn (among the last few: a body can hold millions)
        user_turns = (m for m in reversed(asked[-20:]) if isinstance(m, dict) and m.get("role") == "user")
        asked = next(user_turns, asked[-1])
    if isinstance(asked, dict):
        asked = asked.get("content", "")
    if isinstance(asked, list):  # content parts
        asked = " ".join(str(p.get("text", "")) if isinstance(p, dict) else str(p) for p in asked[:20])
    text = " ".join(str(asked or "").split())
    head = " ".join(text.split(" ")[:words])
    return head + (" ..." if len(head) < len(text) else "")


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


def _unknown_request(index: RecordingIndex, path: str, body: dict[str, Any]) -> Response:
    model, prompt = _short.repr(body.get("model")), _short.repr(_prompt_excerpt(body))
    asked = f"POST {path} with model {model} and prompt {prompt}"
    closest = index.closest(path, body)
    if closest is None:
        hint = f"No recording is for {path}."
    else:
        differing = closest.differing
        fields = ", ".join(_short.repr(k)[1:-1] for k in differing[:CLOSEST_NAMED])
        more = " and more" if len(differing) > CLOSEST_NAMED else ""
        hint = f"The closest recording, {closest.entry.recording.name!r}, differs in: {fields}{more}."
    if index.problems:
        files = sorted(index.problems)
        hint += (
            f" {len(files)} recording file(s) could not be used: {', '.join(files[:5])}"
            f"{' ...' if len(files) > 5 else ''} (`python -m streamscope list` says why)."
        )
    message = f"No recording answers {asked}. {_MATCH_RULE} {hint} {_HOW_TO_LIST} {_HOW_TO_GO_LIVE}"
    return _error(404, message, code="recording_not_found")


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


def match_body(index: RecordingIndex, path: str, raw: bytes, *, hint: bool) -> Match | Response | None:
    """The recording that answers ``POST path`` with body ``raw``, or the error that answers it.

    With ``hint=False``, None where no recording answers (the 404 compares the body with every
    recording: see ``replay.worker``).
    """
    body = _parse_body(raw, path)
    if isinstance(body, Response):
        return body
    try:
        match = index.find(path, body)
        if match is None and hint:
            return _unknown_request(index, path, body)
    except RecursionError:  # read, but too deep to compare or quote
        return _error(400, f"The body of POST {path} is nested too deeply.")
    return match


async def _matched(index: RecordingIndex, worker: BodyWorker, path: str, raw: bytes) -> Match | Response:
    """``match_body``: in the loop when the body is cheap to read and a recording answers it, else in
    the body worker's process."""
    found = match_body(index, path, raw, hint=False) if cheap(raw) else None
    if found is not None:
        return found
    if worker.busy:
        message = "The replay server is reading other large requests; send this one again later."
        return _error(503, message, kind="server_error")
    try:
        outcome = await worker.outcome(path, raw)
    except BrokenProcessPool:
        return _error(
            500, f"The replay server's body reader stopped while reading POST {path}.", kind="server_error"
        )
    if isinstance(outcome[0], str):
        name, note = outcome
        entry = index.named(name)
        if entry is not None:
            return Match(entry, note=note)
        return _error(
            404, f"The recording {name!r} that answers this request was just removed. {_HOW_TO_LIST}"
        )
    status, content, headers = outcome
    return Response(content, status_code=status, headers=dict(headers))


def create_app(
    index: RecordingIndex,
    speed: float,
    stats: _Stats | None = None,
    *,
    request_timeout: float = REQUEST_TIMEOUT_S,
) -> Starlette:
    """The ASGI application: the three endpoints, answered from ``index`` at ``speed``, the resume of a
    background Responses stream, and the sent log."""
    stats = stats or _Stats()
    worker = BodyWorker(index)

    async def answer(request: Request) -> Response:
        start = request.scope.get(ARRIVAL_KEY) or asyncio.get_running_loop().time()
        path = request.url.path
        if not _is_json(request.headers.get("content-type")):
            asked = _short.repr(request.headers.get("content-type"))
            return _error(
                415,
                f"POST {path} takes a JSON body with the header content-type: application/json, got {asked} "
                "(curl: add -H 'content-type: application/json').",
                close=True,
            )
        raw = await _read_body(request, start + request_timeout)
        if isinstance(raw, Response):
            return raw
        try:
            pace = check_speed(request.headers.get(SPEED_HEADER, speed))
        except BackendError as exc:
            return _error(400, f"Header {SPEED_HEADER}: {exc}")
        try:
            fault = Fault.parse(request.headers[FAULT_HEADER]) if FAULT_HEADER in request.headers else None
        except ValueError as exc:
            grammar = "cut-after=N, error-after=N, stall=S, stall-after=N (comma-separated; N counts events)"
            return _error(400, f"Header {FAULT_HEADER}: {exc}. It takes {grammar}.")
        match = await _matched(index, worker, path, raw)
        if isinstance(match, Response):
            return match
        entry = match.entry
        rec = entry.recording
        if fault is not None and not rec.streamed:
            return _error(400, f"Header {FAULT_HEADER}: {rec.name!r} is not a streamed response.")
        line = _Sent(
            request=next(stats.requests),
            recording=rec.name,
            path=api_path(path),
            fault=request.headers.get(FAULT_HEADER),
            events_total=len(rec.events or []),
            note=match.note,
        )
        stats.sent.append(line)
        headers = {**_replay_headers(rec), REQUEST_ID_HEADER: str(line.request)}
        if match.note is not None:
            headers[NOTE_HEADER] = match.note
        if rec.streamed or rec.incomplete is not None:
            events = _sent_events(entry, start, pace, stats, line, fault, request.scope.get(TRANSPORT_KEY))
            media_type = "text/event-stream" if rec.streamed else None
            return StreamingResponse(events, status_code=rec.status, headers=headers, media_type=media_type)
        if pace and rec.elapsed:
            await _sleep_until(start + rec.elapsed / pace)
        response = JSONResponse(rec.body, status_code=rec.status, headers=headers)
        line.bytes_sent, line.state = len(response.body), "complete"
        line.last_write_s = asyncio.get_running_loop().time() - start
        return response

    async def resume(request: Request) -> Response:
        """``GET /v1/responses/{id}?stream=true&starting_after=N``: the rest of a background response."""
        start = request.scope.get(ARRIVAL_KEY) or asyncio.get_running_loop().time()
        response_id = request.path_params["response_id"]
        if request.query_params.get("stream") != "true":
            return _error(
                400,
                f"GET /v1/responses/{_short.repr(response_id)[1:-1]}: the replay server answers a "
                "retrieve only as a stream, with stream=true "
                "(client.responses.retrieve(id, stream=True, starting_after=N)).",
                param="stream",
            )
        try:
            pace = check_speed(request.headers.get(SPEED_HEADER, speed))
        except BackendError as exc:
            return _error(400, f"Header {SPEED_HEADER}: {exc}")
        entry = index.by_response_id(response_id)
        if entry is None or entry.resumable is None:
            return _error(
                404,
                f"Response with id {_short.repr(response_id)} not found: no Responses recording streamed it. "
                f"{_HOW_TO_LIST}",
                param="response_id",
                code="not_found",
            )
        rec = entry.recording
        if not created_in_background(rec):
            return _error(
                400,
                f"Response {response_id!r} cannot be streamed again: it was not created with background=true "
                f"(recording {rec.name!r}).",
            )
        try:
            first = entry.resumable.first_after(request.query_params.get("starting_after"))
        except ResumeError as exc:
            return _error(exc.status, str(exc), param=exc.param, code=exc.code)
        rest = entry.after(first)
        line = _Sent(
            request=next(stats.requests),
            recording=rec.name,
            path=f"/v1/responses/{response_id}",
            fault=None,
            events_total=len(rest.payloads),
            note=None,
        )
        stats.sent.append(line)
        headers = {**_replay_headers(rec), REQUEST_ID_HEADER: str(line.request)}
        events = _sent_events(rest, start, pace, stats, line, None, request.scope.get(TRANSPORT_KEY))
        return StreamingResponse(
            events, status_code=rec.status, headers=headers, media_type="text/event-stream"
        )

    async def sent_log(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": stats.sent_log()})

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        path = request.url.path
        asked = f"{request.method} {path if len(path) <= _QUOTE_CHARS else path[:_QUOTE_CHARS] + '...'}"
        served = ", ".join(
            [*(f"POST {p}" for p in ENDPOINTS), "GET /v1/responses/{id}?stream=true", f"GET {SENT_LOG_PATH}"]
        )
        message = f"The replay server does not answer {asked}: it answers {served}. {_HOW_TO_LIST}"
        response = _error(exc.status_code, message, code="not_found" if exc.status_code == 404 else None)
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    async def server_error(request: Request, exc: Exception) -> Response:
        message = f"The replay server failed on {request.method} {request.url.path}: {type(exc).__name__}."
        return _error(500, message, kind="server_error")

    app = Starlette(
        routes=[
            *(Route(p, answer, methods=["POST"]) for p in ENDPOINTS),
            Route(RESUME_PATH, resume, methods=["GET"]),
            Route(SENT_LOG_PATH, sent_log, methods=["GET"]),
        ],
        middleware=[Middleware(_LoopbackHostsOnly)],
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )
    app.state.stats = stats
    app.state.worker = worker  # closed when the server shuts down (server._Server)
    return app


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
