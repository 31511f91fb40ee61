"""The starlette app: reads and checks a request, finds its recording, and answers it.

Each endpoint's answer is three steps: read and check the request (``_read``), find the recording
that answers it (``_matched``), send that recording (``_replayed``). A step that must answer
otherwise raises ``_Refusal`` with the response to send instead; the app's exception handlers,
set in one place (``create_app``), send it.
"""

from __future__ import annotations

import asyncio
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ..errors import BackendError
from ..matching import ApiPath, api_path
from ..recording import Recording
from .checks import _error, _is_json, _LoopbackHostsOnly, _parse_body, _read_body
from .contract import (
    _HOW_TO_GO_LIVE,
    _HOW_TO_LIST,
    _MATCH_RULE,
    _QUOTE_CHARS,
    ARRIVAL_KEY,
    ENDPOINTS,
    FAULT_HEADER,
    NOTE_HEADER,
    REQUEST_ID_HEADER,
    REQUEST_TIMEOUT_S,
    RESUME_PATH,
    SENT_LOG_PATH,
    SPEED_HEADER,
    TRANSPORT_KEY,
    Fault,
    _short,
    check_speed,
)
from .index import CLOSEST_NAMED, Match, RecordingIndex, _Entry
from .resume import ResumeError, created_in_background
from .sending import _replay_headers, _Sent, _sent_events, _sleep_until, _Stats
from .worker import BodyWorker, cheap

__all__ = [
    "create_app",
    "match_body",
]


class _Refusal(Exception):
    """Raised by a step of answering a request that must be answered with ``response`` (an error) instead."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


@dataclass(frozen=True)
class _Asked:
    """A request to an endpoint, read and checked: what its answer needs besides the recording."""

    path: ApiPath
    start: float  # loop.time() when its head arrived: a replay's schedule starts there
    raw: bytes  # the body, as sent
    pace: float  # the speed asked for (SPEED_HEADER), else the server's
    fault: Fault | None
    fault_header: str | None  # FAULT_HEADER as sent, for the sent log
    transport: asyncio.Transport | None  # the connection's, to drop it mid-stream


async def _read(request: Request, speed: float, timeout: float) -> _Asked:
    """The request, checked in this order: its content type (415), body (413, 408), speed and fault (400)."""
    start = request.scope.get(ARRIVAL_KEY) or asyncio.get_running_loop().time()
    path = api_path(request.url.path)
    if not _is_json(request.headers.get("content-type")):
        asked = _short.repr(request.headers.get("content-type"))
        message = (
            f"POST {path} takes a JSON body with the header content-type: application/json, got {asked} "
            "(curl: add -H 'content-type: application/json')."
        )
        raise _Refusal(_error(415, message, close=True))
    raw = await _read_body(request, start + timeout)
    if isinstance(raw, Response):
        raise _Refusal(raw)
    pace = _pace(request, speed)
    fault_header = request.headers.get(FAULT_HEADER)
    fault = _fault(fault_header) if fault_header is not None else None
    return _Asked(path, start, raw, pace, fault, fault_header, request.scope.get(TRANSPORT_KEY))


def _pace(request: Request, speed: float) -> float:
    """The speed the request asks for (SPEED_HEADER), else the server's ``speed``."""
    try:
        return check_speed(request.headers.get(SPEED_HEADER, speed))
    except BackendError as exc:
        raise _Refusal(_error(400, f"Header {SPEED_HEADER}: {exc}")) from None


_FAULT_GRAMMAR = "cut-after=N, error-after=N, stall=S, stall-after=N (comma-separated; N counts events)"


def _fault(header: str) -> Fault:
    """The fault the request stages (FAULT_HEADER)."""
    try:
        return Fault.parse(header)
    except ValueError as exc:
        raise _Refusal(_error(400, f"Header {FAULT_HEADER}: {exc}. It takes {_FAULT_GRAMMAR}.")) from None


def match_body(index: RecordingIndex, path: ApiPath, raw: bytes, *, hint: bool) -> Match | Response | None:
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


def _unknown_request(index: RecordingIndex, path: ApiPath, body: dict[str, Any]) -> Response:
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


async def _matched(index: RecordingIndex, worker: BodyWorker, asked: _Asked) -> Match:
    """The recording that answers (``match_body``): found in the loop when the body is cheap to read and a
    recording answers it, else in the body worker's process."""
    found = match_body(index, asked.path, asked.raw, hint=False) if cheap(asked.raw) else None
    if isinstance(found, Response):
        raise _Refusal(found)
    return found if found is not None else await _matched_in_worker(index, worker, asked.path, asked.raw)


async def _matched_in_worker(index: RecordingIndex, worker: BodyWorker, path: ApiPath, raw: bytes) -> Match:
    """``match_body`` with the 404's hint, in the body worker's process; a refusal for any error."""
    if worker.busy:
        message = "The replay server is reading other large requests; send this one again later."
        raise _Refusal(_error(503, message, kind="server_error"))
    try:
        outcome = await worker.outcome(path, raw)
    except BrokenProcessPool:
        message = f"The replay server's body reader stopped while reading POST {path}."
        raise _Refusal(_error(500, message, kind="server_error")) from None
    if not isinstance(outcome[0], str):  # the error the worker made
        status, content, headers = outcome
        raise _Refusal(Response(content, status_code=status, headers=dict(headers)))
    name, note = outcome
    entry = index.named(name)
    if entry is None:
        message = f"The recording {name!r} that answers this request was just removed. {_HOW_TO_LIST}"
        raise _Refusal(_error(404, message))
    return Match(entry, note=note)


def _logged(
    stats: _Stats, rec: Recording, path: str, *, fault: str | None, events_total: int, note: str | None
) -> tuple[_Sent, dict[str, str]]:
    """A new line in the sent log for an answer from ``rec``, and the headers that answer carries."""
    line = _Sent(
        request=next(stats.requests),
        recording=rec.name,
        path=path,
        fault=fault,
        events_total=events_total,
        note=note,
    )
    stats.sent.append(line)
    headers = {**_replay_headers(rec), REQUEST_ID_HEADER: str(line.request)}
    if note is not None:
        headers[NOTE_HEADER] = note
    return line, headers


async def _replayed(match: Match, asked: _Asked, stats: _Stats) -> Response:
    """The recording's answer: its events at the pace asked for, or its body after its recorded time."""
    entry, rec = match.entry, match.entry.recording
    if asked.fault is not None and not rec.streamed:
        raise _Refusal(_error(400, f"Header {FAULT_HEADER}: {rec.name!r} is not a streamed response."))
    events_total = len(rec.events or [])
    line, headers = _logged(
        stats, rec, asked.path, fault=asked.fault_header, events_total=events_total, note=match.note
    )
    if rec.streamed or rec.incomplete is not None:
        events = _sent_events(entry, asked.start, asked.pace, stats, line, asked.fault, asked.transport)
        media_type = "text/event-stream" if rec.streamed else None
        return StreamingResponse(events, status_code=rec.status, headers=headers, media_type=media_type)
    if asked.pace and rec.elapsed:
        await _sleep_until(asked.start + rec.elapsed / asked.pace)
    response = JSONResponse(rec.body, status_code=rec.status, headers=headers)
    line.bytes_sent, line.state = len(response.body), "complete"
    line.last_write_s = asyncio.get_running_loop().time() - asked.start
    return response


def _resumed(index: RecordingIndex, response_id: str, starting_after: str | None) -> _Entry:
    """The recorded events of background response ``response_id`` after ``starting_after``.

    A refusal if no recording streamed it (404) or it was not made in the background (400); a
    ``ResumeError`` if ``starting_after`` names no event.
    """
    entry = index.by_response_id(response_id)
    if entry is None or entry.resumable is None:
        message = (
            f"Response with id {_short.repr(response_id)} not found: no Responses recording streamed it. "
            f"{_HOW_TO_LIST}"
        )
        raise _Refusal(_error(404, message, param="response_id", code="not_found"))
    rec = entry.recording
    if not created_in_background(rec):
        raise _Refusal(
            _error(
                400,
                f"Response {response_id!r} cannot be streamed again: it was not created with background=true "
                f"(recording {rec.name!r}).",
            )
        )
    return entry.after(entry.resumable.first_after(starting_after))


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
        asked = await _read(request, speed, request_timeout)
        match = await _matched(index, worker, asked)
        return await _replayed(match, asked, stats)

    async def resume(request: Request) -> Response:
        """``GET /v1/responses/{id}?stream=true&starting_after=N``: the rest of a background response."""
        start = request.scope.get(ARRIVAL_KEY) or asyncio.get_running_loop().time()
        response_id = request.path_params["response_id"]
        if request.query_params.get("stream") != "true":
            message = (
                f"GET /v1/responses/{_short.repr(response_id)[1:-1]}: the replay server answers a "
                "retrieve only as a stream, with stream=true "
                "(client.responses.retrieve(id, stream=True, starting_after=N))."
            )
            raise _Refusal(_error(400, message, param="stream"))
        pace = _pace(request, speed)
        rest = _resumed(index, response_id, request.query_params.get("starting_after"))
        rec = rest.recording
        line, headers = _logged(
            stats, rec, f"/v1/responses/{response_id}", fault=None, events_total=len(rest.payloads), note=None
        )
        events = _sent_events(rest, start, pace, stats, line, None, request.scope.get(TRANSPORT_KEY))
        return StreamingResponse(
            events, status_code=rec.status, headers=headers, media_type="text/event-stream"
        )

    async def sent_log(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": stats.sent_log()})

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, _Refusal)
        return exc.response

    async def not_resumable(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ResumeError)
        return _error(exc.status, str(exc), param=exc.param, code=exc.code)

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
        # What a handler raises, answered: a refusal's own response, a resume that cannot be answered,
        # a path or method not served, a failure of ours.
        exception_handlers={
            _Refusal: refused,
            ResumeError: not_resumable,
            HTTPException: http_error,
            Exception: server_error,
        },
    )
    app.state.stats = stats
    app.state.worker = worker  # closed when the server shuts down (server._Server)
    return app
