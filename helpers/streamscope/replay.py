"""The replay server: an OpenAI-compatible HTTP server that answers from recordings.

It serves ``POST /v1/chat/completions``, ``/v1/completions`` and ``/v1/responses`` on
loopback, so the official SDK (or curl, or any client) can be pointed at it with
``base_url``. Each request is answered by the recording that matches it, at the
recorded pace.

Which recording answers a request: the one whose path and request body are equal
to the request's, ignoring the body fields that cannot change the output
(``recording.IGNORED_REQUEST_FIELDS``: user, metadata, store, ...). Key order and
whitespace do not matter; every other field does (model, messages, temperature,
stream, stream_options, ...). ``python -m streamscope list`` shows what is recorded.

Pace: a streamed recording's events go out at their recorded offsets (``event.t``)
measured from the request's arrival, divided by the speed factor (1 = as recorded,
2 = twice as fast, 0 = no waiting); events due at the same moment go out in one
write. A non-streamed recording's body goes out after its ``elapsed`` time. A
client may choose its own speed per request with the ``X-Streamscope-Speed``
header (``streamscope.client(speed=...)`` does this).

Timing: an event is written a few hundredths of a millisecond after its due time
on a quiet machine (benchmarks/replay.py; a busy one adds its own delays). asyncio's
epoll selector rounds timer waits up to whole milliseconds, so the server runs on a
``select()``-based loop (microsecond timeouts), sleeps until shortly before each
due time and finishes with a short spin of ``asyncio.sleep(0)``. The schedule
starts when the request's head arrived (noted by the protocol), not when its
handler got to run. Each write goes straight out: h11 hands every body chunk to
the transport as it is sent, and asyncio sets TCP_NODELAY on the accepted
connections (see ``_bind``). uvicorn's httptools protocol measured no better here
(on a busy machine), and would add a compiled dependency.

Errors (unknown request, malformed JSON, wrong path or method) come back as
OpenAI-shaped JSON, ``{"error": {"message", "type", "param", "code"}}``, whose
message says what was asked and how to list the recordings or go live.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import math
import selectors
import socket
import threading
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from uvicorn.protocols.http.h11_impl import H11Protocol

from .errors import BackendError, RecordingError
from .recording import (
    IGNORED_REQUEST_FIELDS,
    RECORDINGS_DIR,
    Recording,
    api_path,
    match_key,
    relevant_fields,
)

ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/responses")
SPEED_HEADER = "x-streamscope-speed"
ARRIVAL_KEY = "streamscope.arrival"  # in the ASGI scope: loop.time() when the request arrived

# Wake this long before an event is due, then spin. Measured on a busy 2-core machine
# (server-side lateness, one stream): no spin, median 0.29 ms late; 0.5 ms of spin,
# median 0.01 ms, as with 1.5 ms, which costs twice the CPU (and, in a thread, the GIL).
_SPIN_LEAD_S = 0.0005
# Recorded response headers that describe the original connection, not the content.
_HOP_HEADERS = frozenset(
    {"content-length", "transfer-encoding", "content-encoding", "connection", "keep-alive"}
)
_HOW_TO_LIST = "List what is recorded with `python -m streamscope list`."
_HOW_TO_GO_LIVE = (
    "To send requests to a live API instead, set STREAMSCOPE_BACKEND=openai (with OPENAI_API_KEY) "
    "or STREAMSCOPE_BACKEND=<base URL of an OpenAI-compatible server>."
)
_MATCH_RULE = (
    "A recording answers a request when the path and every body field are equal, except "
    + ", ".join(sorted(IGNORED_REQUEST_FIELDS))
    + "."
)


def check_speed(speed: float) -> float:
    """Return ``speed`` as a float, or raise BackendError if it is not a finite number >= 0."""
    try:
        value = float(speed)
    except (TypeError, ValueError):
        raise BackendError(
            f"speed must be a number >= 0 (1 = as recorded, 0 = no waiting), got {speed!r}"
        ) from None
    if not math.isfinite(value) or value < 0:
        raise BackendError(
            f"speed must be a finite number >= 0 (1 = as recorded, 0 = no waiting), got {speed!r}"
        )
    return value


@dataclass(frozen=True)
class _Entry:
    """A recording with its events laid out for sending."""

    recording: Recording
    relevant_body: dict[str, Any]
    offsets: tuple[float, ...]
    payloads: tuple[bytes, ...]

    @classmethod
    def of(cls, recording: Recording) -> _Entry:
        body = recording.request.get("body") or {}
        events = recording.events or []
        return cls(
            recording=recording,
            relevant_body=relevant_fields(body),
            offsets=tuple(e.t for e in events),
            payloads=tuple(e.raw.encode() for e in events),
        )


class RecordingIndex:
    """The recordings a replay server answers from, found by ``match_key``.

    Given a folder, it reads the folder again whenever its files change, so a
    recording saved while the server runs is answered at once.
    """

    def __init__(self, source: str | Path | Iterable[Recording] | None = None) -> None:
        self._lock = threading.Lock()
        self._signature: tuple[tuple[str, int, int], ...] | None = None
        self._entries: dict[str, _Entry] = {}
        if source is None or isinstance(source, str | Path):
            self.directory: Path | None = Path(source) if source is not None else RECORDINGS_DIR
            if not self.directory.is_dir():
                raise RecordingError(f"recordings folder {self.directory} does not exist")
            self._refresh()
        else:
            self.directory = None
            self._entries = self._index(list(source))

    @staticmethod
    def _index(recordings: list[Recording]) -> dict[str, _Entry]:
        entries: dict[str, _Entry] = {}
        for rec in recordings:
            key = rec.match_key()
            if key in entries:
                raise RecordingError(
                    f"recordings {entries[key].recording.name!r} and {rec.name!r} answer the same request; "
                    "remove one of them"
                )
            entries[key] = _Entry.of(rec)
        return entries

    def _refresh(self) -> None:
        if self.directory is None:
            return
        files = sorted(self.directory.glob("*.json"))
        signature = tuple((p.name, (s := p.stat()).st_mtime_ns, s.st_size) for p in files)
        with self._lock:
            if signature != self._signature:
                self._entries = self._index([Recording.load(p) for p in files])
                self._signature = signature

    def entries(self) -> list[_Entry]:
        self._refresh()
        return list(self._entries.values())

    def find(self, path: str, body: dict[str, Any]) -> _Entry | None:
        self._refresh()
        return self._entries.get(match_key(path, body))

    def closest(self, path: str, body: dict[str, Any]) -> tuple[_Entry, list[str]] | None:
        """The recording for the same path that differs from ``body`` in the fewest fields."""
        relevant = relevant_fields(body)
        best: tuple[_Entry, list[str]] | None = None
        for entry in self.entries():
            if api_path(entry.recording.path) != api_path(path):
                continue
            keys = sorted(set(relevant) | set(entry.relevant_body))
            differing = [k for k in keys if relevant.get(k, _MISSING) != entry.relevant_body.get(k, _MISSING)]
            if best is None or len(differing) < len(best[1]):
                best = (entry, differing)
        return best


_MISSING = object()


def _prompt_excerpt(body: dict[str, Any], words: int = 8) -> str:
    """The first words of what the request asks, from messages, prompt or input."""
    asked: Any = body.get("messages") or body.get("prompt") or body.get("input")
    if isinstance(asked, list) and asked:
        user_turns = [m for m in asked if isinstance(m, dict) and m.get("role") == "user"]
        asked = (user_turns or asked)[-1]
    if isinstance(asked, dict):
        asked = asked.get("content", "")
    if isinstance(asked, list):  # content parts
        asked = " ".join(str(p.get("text", "")) if isinstance(p, dict) else str(p) for p in asked)
    text = " ".join(str(asked or "").split())
    head = " ".join(text.split(" ")[:words])
    return head + (" ..." if len(head) < len(text) else "")


def _error(
    status: int, message: str, *, kind: str = "invalid_request_error", code: str | None = None
) -> Response:
    content = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return JSONResponse(content, status_code=status)


def _unknown_request(index: RecordingIndex, path: str, body: dict[str, Any]) -> Response:
    asked = f"POST {path} with model {body.get('model')!r} and prompt {_prompt_excerpt(body)!r}"
    closest = index.closest(path, body)
    if closest is None:
        hint = f"No recording is for {path}."
    else:
        entry, differing = closest
        hint = f"The closest recording, {entry.recording.name!r}, differs in: {', '.join(differing)}."
    message = f"No recording answers {asked}. {_MATCH_RULE} {hint} {_HOW_TO_LIST} {_HOW_TO_GO_LIVE}"
    return _error(404, message, code="recording_not_found")


async def _sleep_until(due: float) -> None:
    """Sleep until ``loop.time()`` reaches ``due``, to within a fraction of a millisecond."""
    loop = asyncio.get_running_loop()
    ahead = due - _SPIN_LEAD_S - loop.time()
    if ahead > 0:
        await asyncio.sleep(ahead)
    while loop.time() < due:
        await asyncio.sleep(0)


class _Stats:
    """What the server is doing now; read by tests and benchmarks."""

    def __init__(self) -> None:
        self.active_streams = 0
        self.last_served: Recording | None = None  # so a notebook can say where a result came from


async def _paced_events(entry: _Entry, start: float, speed: float, stats: _Stats) -> AsyncIterator[bytes]:
    stats.active_streams += 1
    try:
        if speed == 0:
            yield b"".join(entry.payloads)
            return
        loop = asyncio.get_running_loop()
        offsets, payloads, i = entry.offsets, entry.payloads, 0
        while i < len(offsets):
            await _sleep_until(start + offsets[i] / speed)
            # Everything due by now goes out together: one write, as a server would flush it.
            now, j = loop.time(), i + 1
            while j < len(offsets) and start + offsets[j] / speed <= now:
                j += 1
            yield b"".join(payloads[i:j])
            i = j
    finally:
        stats.active_streams -= 1


def _replay_headers(recording: Recording) -> dict[str, str]:
    return {k: v for k, v in recording.headers.items() if k.lower() not in _HOP_HEADERS}


def create_app(index: RecordingIndex, speed: float, stats: _Stats | None = None) -> Starlette:
    """The ASGI application: the three endpoints, answered from ``index`` at ``speed``."""
    stats = stats or _Stats()

    async def answer(request: Request) -> Response:
        start = request.scope.get(ARRIVAL_KEY) or asyncio.get_running_loop().time()
        path = request.url.path
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return _error(400, f"The body of POST {path} is not valid JSON ({exc}). {_HOW_TO_LIST}")
        if not isinstance(body, dict):
            return _error(400, f"The body of POST {path} must be a JSON object, got {type(body).__name__}.")
        try:
            pace = check_speed(request.headers.get(SPEED_HEADER, speed))
        except BackendError as exc:
            return _error(400, f"Header {SPEED_HEADER}: {exc}")
        try:
            entry = index.find(path, body)
        except RecordingError as exc:
            return _error(500, f"The replay server cannot read its recordings: {exc}", kind="server_error")
        if entry is None:
            return _unknown_request(index, path, body)
        rec = stats.last_served = entry.recording
        headers = _replay_headers(rec)
        if rec.streamed:
            return StreamingResponse(
                _paced_events(entry, start, pace, stats),
                status_code=rec.status,
                headers=headers,
                media_type="text/event-stream",
            )
        if pace and rec.elapsed:
            await _sleep_until(start + rec.elapsed / pace)
        return JSONResponse(rec.body, status_code=rec.status, headers=headers)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        asked = f"{request.method} {request.url.path}"
        served = ", ".join(f"POST {p}" for p in ENDPOINTS)
        message = f"The replay server does not answer {asked}: it answers {served}. {_HOW_TO_LIST}"
        response = _error(exc.status_code, message, code="not_found" if exc.status_code == 404 else None)
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    app = Starlette(
        routes=[Route(p, answer, methods=["POST"]) for p in ENDPOINTS],
        exception_handlers={HTTPException: http_error},
    )
    app.state.stats = stats
    return app


class _ArrivalStampingH11(H11Protocol):
    """uvicorn's h11 protocol, noting in each request's scope when its head arrived.

    The schedule of a replay starts there: with many requests at once, a handler can
    start several milliseconds after its request came in.
    """

    def data_received(self, data: bytes) -> None:
        arrived = self.loop.time()
        previous = self.cycle
        super().data_received(data)
        if self.cycle is not None and self.cycle is not previous:
            self.cycle.scope[ARRIVAL_KEY] = arrived  # type: ignore[literal-required]


def _precise_loop() -> asyncio.AbstractEventLoop:
    # select() takes microsecond timeouts; epoll (the default) rounds up to whole ms.
    return asyncio.SelectorEventLoop(selectors.SelectSelector())


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # Naming the protocol matters: asyncio sets TCP_NODELAY only on accepted sockets whose proto is
    # IPPROTO_TCP, and without it Nagle holds a response's body behind its headers until the
    # client's delayed ACK (about 40 ms on a reused connection).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    # Listening now lets clients connect (queued) before the server's loop starts.
    sock.listen(128)
    return sock


class ReplayServer:
    """A replay server running in a background thread: ``ReplayServer().start()``.

    ``recordings`` is a folder (default: the package's recordings) or a list of
    ``Recording`` objects. Use ``.base_url`` as the SDK's ``base_url``; ``.stop()``
    or a ``with`` block shuts it down. In a thread, the server shares the GIL with
    the host process, whose own work can delay an event; ``python -m streamscope
    serve`` runs it in a process of its own.
    """

    def __init__(
        self,
        speed: float = 1.0,
        recordings: str | Path | Iterable[Recording] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.speed = check_speed(speed)
        self.index = RecordingIndex(recordings)
        self.host, self.port = host, port
        self.stats = _Stats()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    @property
    def active_streams(self) -> int:
        """How many streamed responses are being sent right now."""
        return self.stats.active_streams

    @property
    def last_served(self) -> Recording | None:
        """The recording that answered the latest request."""
        return self.stats.last_served

    def _uvicorn(self) -> uvicorn.Server:
        config = uvicorn.Config(
            create_app(self.index, self.speed, self.stats),
            http=_ArrivalStampingH11,
            lifespan="off",
            log_config=None,  # leave the host process's logging alone
            log_level="warning",
            access_log=False,
            # A stream still running at shutdown is cancelled after this long.
            timeout_graceful_shutdown=1,
        )
        return uvicorn.Server(config)

    def listen(self) -> ReplayServer:
        """Bind the address now; with port 0 a free one, which ``base_url`` then names.

        Clients can connect (they wait in the queue) before the server starts serving.
        """
        if self._socket is None:
            self._socket = _bind(self.host, self.port)
            self.port = self._socket.getsockname()[1]
        return self

    def start(self) -> ReplayServer:
        """Serve in a background thread; returns at once."""
        if self._thread is not None:
            raise RuntimeError("this ReplayServer is already started")
        sock = self._take_socket()
        self._server = server = self._uvicorn()
        self._thread = threading.Thread(
            target=_run, args=(server, sock), name=f"streamscope-replay-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def serve(self) -> None:
        """Serve in this thread until Ctrl-C (``python -m streamscope serve``)."""
        sock = self._take_socket()
        with contextlib.suppress(KeyboardInterrupt):
            _run(self._uvicorn(), sock)

    @property
    def loopback(self) -> bool:
        """Whether only this machine can reach the server."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def _take_socket(self) -> socket.socket:
        sock = self.listen()._socket
        assert sock is not None
        self._socket = None
        return sock

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> ReplayServer:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self._thread is not None else "stopped"
        return f"<ReplayServer {state} at {self.base_url}, speed {self.speed:g}>"


def _run(server: uvicorn.Server, sock: socket.socket) -> None:
    async def serve() -> None:
        # Starlette streams through anyio, whose asyncio backend loads on first use: load it now
        # rather than adding ~50 ms to the first request's time to first chunk.
        async with anyio.create_task_group():
            pass
        await server.serve(sockets=[sock])

    with asyncio.Runner(loop_factory=_precise_loop) as runner:
        runner.run(serve())
