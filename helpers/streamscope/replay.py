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
on a quiet machine (benchmarks/replay.py; a busy one adds its own delays). The server
runs on asyncio's epoll loop, which watches any number of connections (``select()``
takes no descriptor numbered 1024 or more: a thousand idle connections would end the
server) but rounds each timer wait up to a whole millisecond; so it sleeps until
``_SPIN_LEAD_S`` (a millisecond and a little more) before each due time and finishes
with a short spin of ``asyncio.sleep(0)``, which keeps serving the other connections. The schedule
starts when the request's head arrived (noted by the protocol), not when its
handler got to run. Each write goes straight out: h11 hands every body chunk to
the transport as it is sent, and asyncio sets TCP_NODELAY on the accepted
connections (see ``_bind``). uvicorn's httptools protocol measured no better here
(on a busy machine), and would add a compiled dependency.

Errors (unknown request, malformed JSON, wrong path or method) come back as
OpenAI-shaped JSON, ``{"error": {"message", "type", "param", "code"}}``, whose
message says what was asked and how to list the recordings or go live.

Hostile input. The server runs inside the notebook kernel (``streamscope.client()``),
so any program on the machine, or a web page in the user's browser, must not be able
to knock it over:

- a body over ``MAX_BODY_BYTES`` (4 MiB) is a 413, read to its end and dropped piece by
  piece (memory stays flat; the client, still sending, reads the 413); a request whose
  head does not arrive within ``request_timeout`` (10 s) of its first byte, or whose
  body does not follow within as long, is a 408 and the connection closes;
- a body costly to read (over 64 KiB, or of many values), and any request no recording
  answers (the 404 compares it with every recording), is read and matched in a worker
  process (``replay_worker``), so that no request holds the loop that paces the streams;
- every body that is not a JSON object is a 400 saying why (not JSON, not UTF-8,
  nested too deeply, an integer over Python's 4300 digits, a lone surrogate);
  malformed HTTP is a 400 in the same shape; an error message quotes at most 80
  characters of anything the client sent and stays under 2000;
- only ``content-type: application/json`` (415 otherwise: a page can POST
  ``text/plain`` without asking the browser's permission), and only ``Host`` values
  that name a loopback address or the address the request came in on (421 otherwise:
  DNS rebinding);
- a recording file that cannot be used (half-written, a field ``recording_schema`` refuses,
  or with the name of, or answering the same request as, another file) is skipped and reported once on
  stderr, at start and when it appears; the others are answered as usual, and a 404
  mentions the skipped files.

Faults on request, for teaching what a client must survive: the header
``x-streamscope-fault`` (see ``Fault``) cuts a streamed reply after event N
(``cut-after=N``: the connection drops, no last chunk, no ``[DONE]``), sends an error
event after event N (``error-after=N``), or stalls S seconds after event N
(``stall=S, stall-after=N``). A recording marked ``incomplete`` (the recorder keeps
streams that ended early) is replayed as it ended: if its connection broke, the
replay breaks it at the same point.

The sent log: every answer from a recording carries ``x-streamscope-request: ID`` and
has a line in ``GET /streamscope/sent`` (or ``ReplayServer.sent``): the recording,
the fault asked for, events and bytes written so far, when the last write went out,
and how it ended (``complete``, ``client disconnected``, ``cut (fault)``, ``error sent
(fault)``, ``dropped as recorded``). A client that stops reading and closes the stream
shows up as ``client disconnected`` with fewer events sent than recorded: the server
stopped sending.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import functools
import ipaddress
import itertools
import json
import math
import re
import reprlib
import selectors
import socket
import sys
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, replace
from http import HTTPStatus
from pathlib import Path
from typing import Any

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from uvicorn.protocols.http.h11_impl import H11Protocol

from .errors import BackendError, RecordingError
from .recording import (
    IGNORED_REQUEST_FIELDS,
    RECORDINGS_DIR,
    FileCache,
    Recording,
    api_path,
    load_folder,
    match_key,
    relevant_fields,
)
from .replay_worker import BodyWorker, cheap, light

ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/responses")
SENT_LOG_PATH = "/streamscope/sent"
SPEED_HEADER = "x-streamscope-speed"
FAULT_HEADER = "x-streamscope-fault"
REQUEST_ID_HEADER = "x-streamscope-request"  # on every answer from a recording: its line in the sent log
ARRIVAL_KEY = "streamscope.arrival"  # in the ASGI scope: loop.time() when the request arrived
TRANSPORT_KEY = "streamscope.transport"  # in the ASGI scope: the connection's asyncio transport
MAX_BODY_BYTES = 4 * 1024 * 1024
REQUEST_TIMEOUT_S = 10.0  # from a request's first byte to its whole head, and from its head to its whole body
SENT_LOG_LENGTH = 1000

# Wake this long before an event is due, then spin. epoll rounds a wait up to whole milliseconds, so
# a wake planned 1.1 ms early comes 0.1-1.1 ms early; the spin covers the rest. (On select(), which
# takes microseconds, 0.5 ms of spin gave a median 0.01 ms late, against 0.29 ms without a spin.)
_SPIN_LEAD_S = 0.0011
# Recorded response headers that describe the original connection, not the content.
_HOP_HEADERS = frozenset(
    {"content-length", "transfer-encoding", "content-encoding", "connection", "keep-alive"}
)
_HOW_TO_LIST = "List what is recorded with `python -m streamscope list`."
# Error messages quote what was asked; a quote is cut to this many characters, a message to _MESSAGE_CHARS.
_QUOTE_CHARS = 80
_MESSAGE_CHARS = 2000
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
        events = [(e.t, e.raw.encode()) for e in recording.events or []]
        if recording.events is None and recording.incomplete is not None:
            # A body cut short is sent as it arrived, as one event, before the connection breaks.
            text = recording.body if isinstance(recording.body, str) else json.dumps(recording.body)
            events = [(recording.elapsed or recording.incomplete.t, text.encode())]
        return cls(
            recording=recording,
            relevant_body=relevant_fields(body),
            offsets=tuple(t for t, _ in events),
            payloads=tuple(raw for _, raw in events),
        )


def _report_on_stderr(problem: str) -> None:
    print(f"streamscope: skipping a recording file: {problem}", file=sys.stderr, flush=True)


class RecordingIndex:
    """The recordings a replay server answers from, found by ``match_key``.

    Given a folder, it reads the folder again whenever its files change, so a
    recording saved while the server runs is answered at once. A file that cannot
    be used (see ``recording.load_folder``) is skipped, kept in ``problems`` (file
    name -> reason) and passed to ``report`` once (default: a line on stderr).
    """

    def __init__(
        self,
        source: str | Path | Iterable[Recording] | None = None,
        *,
        report: Callable[[str], None] = _report_on_stderr,
    ) -> None:
        self._lock = threading.Lock()
        self._signature: tuple[tuple[str, int, int], ...] | None = None
        self._files: FileCache = {}
        self._entries: dict[str, _Entry] = {}
        self.version = 0  # counts the readings of the folder that changed what is answered
        self._report = report
        self.problems: dict[str, str] = {}
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
            key = rec.check().match_key()
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
        signature = []
        for path in sorted(self.directory.glob("*.json")):
            with contextlib.suppress(OSError):  # removed since the listing
                signature.append((path.name, (s := path.stat()).st_mtime_ns, s.st_size))
        with self._lock:
            if tuple(signature) == self._signature:
                return
            # Only the files that changed are read again, and only their entries are laid out again.
            recordings, problems = load_folder(self.directory, cache=self._files)
            laid_out = {id(entry.recording): entry for entry in self._entries.values()}
            entries: dict[str, _Entry] = {}
            for rec in recordings:
                entries[rec.match_key()] = laid_out.get(id(rec)) or _Entry.of(rec)
            for name, problem in problems.items():
                if self.problems.get(name) != problem:
                    self._report(problem)
            self._entries, self._signature, self.problems = entries, tuple(signature), problems
            self.version += 1

    def recordings(self) -> list[Recording]:
        """The recordings answered, by name."""
        return sorted((e.recording for e in self.entries()), key=lambda rec: rec.name)

    def entries(self) -> list[_Entry]:
        self._refresh()
        return list(self._entries.values())

    def named(self, name: str) -> _Entry | None:
        """The entry of the recording called ``name``, if it is still answered."""
        return next((e for e in self.entries() if e.recording.name == name), None)

    def requests(self) -> tuple[int, list[Recording], dict[str, str]]:
        """What a body worker matches against: the version, the recordings' requests, the problems."""
        self._refresh()
        with self._lock:
            return self.version, [light(e.recording) for e in self._entries.values()], dict(self.problems)

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


_short = reprlib.Repr()
_short.maxstring = _short.maxother = _QUOTE_CHARS
_short.maxlong = _QUOTE_CHARS // 2


def _error_content(message: str, kind: str, code: str | None) -> dict[str, Any]:
    # A message quotes what was asked: cut it to size, and spell out lone surrogates (not UTF-8).
    if len(message) > _MESSAGE_CHARS:
        message = message[: _MESSAGE_CHARS - 3] + "..."
    message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _error(
    status: int,
    message: str,
    *,
    kind: str = "invalid_request_error",
    code: str | None = None,
    close: bool = False,
) -> Response:
    """An error in OpenAI's shape; ``close``: the connection ends after it (the request was not read)."""
    headers = {"connection": "close"} if close else None
    return JSONResponse(_error_content(message, kind, code), status_code=status, headers=headers)


def _unknown_request(index: RecordingIndex, path: str, body: dict[str, Any]) -> Response:
    model, prompt = _short.repr(body.get("model")), _short.repr(_prompt_excerpt(body))
    asked = f"POST {path} with model {model} and prompt {prompt}"
    closest = index.closest(path, body)
    if closest is None:
        hint = f"No recording is for {path}."
    else:
        entry, differing = closest
        fields = ", ".join(k[:_QUOTE_CHARS] for k in differing[:10])
        more = f" and {len(differing) - 10} more" if len(differing) > 10 else ""
        hint = f"The closest recording, {entry.recording.name!r}, differs in: {fields}{more}."
    if index.problems:
        files = sorted(index.problems)
        hint += (
            f" {len(files)} recording file(s) could not be used: {', '.join(files[:5])}"
            f"{' ...' if len(files) > 5 else ''} (`python -m streamscope list` says why)."
        )
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


@dataclass
class _Sent:
    """What the server sent for one request it answered from a recording: a line of the sent log."""

    request: int  # the answer's x-streamscope-request header
    recording: str
    path: str
    fault: str | None  # the x-streamscope-fault header, as asked
    events_total: int  # events in the recording (a non-streamed body counts as none)
    events_sent: int = 0  # whole events written to the connection
    bytes_sent: int = 0
    last_write_s: float | None = None  # seconds from the request's arrival to the latest write
    state: str = (
        "sending"  # then: complete, client disconnected, cut (fault), error sent (fault), dropped as recorded
    )


class _Stats:
    """What the server is doing now and what it sent; read by tests, benchmarks and notebooks."""

    def __init__(self) -> None:
        self.active_streams = 0
        self.last_served: Recording | None = None  # so a notebook can say where a result came from
        self.sent: deque[_Sent] = deque(maxlen=SENT_LOG_LENGTH)
        self.requests = itertools.count(1)

    def sent_log(self) -> list[dict[str, Any]]:
        return [asdict(line) for line in list(self.sent)]


@dataclass(frozen=True)
class Fault:
    """A failure the client asks the replay server to stage, with the ``x-streamscope-fault`` header.

    The header holds comma-separated ``name=value`` items; N counts the recording's SSE
    events (``[DONE]`` included):

    - ``cut-after=N``: send N events, then drop the connection (no last chunk, no ``[DONE]``);
    - ``error-after=N``: send N events, then an error event (chat and completions:
      ``data: {"error": {...}}``, which the SDK raises as ``APIError``; Responses: an
      ``error`` event), then end the response;
    - ``stall=S``: after event ``stall-after=N`` (default 1), wait S extra seconds (at any speed).
    """

    cut_after: int | None = None
    error_after: int | None = None
    stall_s: float = 0.0
    stall_after: int = 1

    @classmethod
    def parse(cls, header: str) -> Fault:
        """The fault a header asks for; ValueError with a one-line reason if it asks nonsense."""
        items: dict[str, str] = {}
        for item in header.split(","):
            name, sep, value = item.partition("=")
            name = name.strip().lower()
            if not sep or name not in ("cut-after", "error-after", "stall", "stall-after") or name in items:
                raise ValueError(f"cannot read {item.strip()[:_QUOTE_CHARS]!r}")
            items[name] = value.strip()
        if "cut-after" in items and "error-after" in items:
            raise ValueError("cut-after and error-after cannot both end the stream")
        counts = {k: items[k] for k in ("cut-after", "error-after", "stall-after") if k in items}
        for name, value in counts.items():
            if not value.isdigit() or int(value) > 1_000_000:
                raise ValueError(f"{name} must be a whole number of events, got {value[:_QUOTE_CHARS]!r}")
        stall = items.get("stall", "0")
        try:
            stall_s = float(stall)
        except ValueError:
            stall_s = -1.0
        if not 0 <= stall_s <= 3600:
            raise ValueError(
                f"stall must be a number of seconds from 0 to 3600, got {stall[:_QUOTE_CHARS]!r}"
            )
        return cls(
            cut_after=int(counts["cut-after"]) if "cut-after" in counts else None,
            error_after=int(counts["error-after"]) if "error-after" in counts else None,
            stall_s=stall_s,
            stall_after=int(counts.get("stall-after", 1)),
        )


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


def _fault_event(path: str, after: int) -> bytes:
    message = f"A server error staged by the replay server after event {after} ({FAULT_HEADER})."
    error = {"message": message, "type": "server_error", "param": None, "code": "streamscope_fault"}
    if api_path(path) == "/v1/responses":
        event = {
            "type": "error",
            "code": error["code"],
            "message": message,
            "param": None,
            "sequence_number": after,
        }
        return f"event: error\ndata: {json.dumps(event)}\n\n".encode()
    return f"data: {json.dumps({'error': error})}\n\n".encode()


async def _drop(transport: asyncio.Transport | None) -> None:
    """End the connection without ending the response, as a server that dies mid-stream does.

    What was written still arrives (the buffer drains first), then the connection's end:
    no last chunk, no ``[DONE]``. Once closed, the transport discards the last chunk that
    the ASGI server writes next.
    """
    if transport is None:  # served by another ASGI server: the response just ends
        return
    while transport.get_write_buffer_size() and not transport.is_closing():
        await asyncio.sleep(0.001)
    transport.close()


async def _sent_events(
    entry: _Entry,
    start: float,
    pace: float,
    stats: _Stats,
    line: _Sent,
    fault: Fault | None,
    transport: asyncio.Transport | None,
) -> AsyncIterator[bytes]:
    """The recording's events as ``_paced_events`` sends them, with the fault asked for, noted in ``line``."""
    ends = list(itertools.accumulate(map(len, entry.payloads)))
    last = len(entry.payloads)
    ends_at = None if fault is None else fault.cut_after if fault.cut_after is not None else fault.error_after
    if ends_at is not None:
        last = min(last, ends_at)
    parts = [(0, last, 0.0)]
    if fault is not None and fault.stall_s and fault.stall_after < last:
        parts = [(0, fault.stall_after, 0.0), (fault.stall_after, last, fault.stall_s)]
    loop = asyncio.get_running_loop()
    try:
        for first, end, stall in parts:
            if stall and not pace:  # no waiting, except where a stall was asked for
                await asyncio.sleep(stall)
            part = replace(entry, offsets=entry.offsets[first:end], payloads=entry.payloads[first:end])
            async for piece in _paced_events(part, start + stall, pace, stats):
                yield piece
                line.bytes_sent += len(piece)
                line.events_sent = bisect.bisect_right(ends, line.bytes_sent)
                line.last_write_s = loop.time() - start
        incomplete = entry.recording.incomplete
        if fault is not None and fault.error_after is not None:
            error = _fault_event(entry.recording.path, last)
            yield error
            line.bytes_sent += len(error)
            line.state = "error sent (fault)"
        elif fault is not None and fault.cut_after is not None:
            await _drop(transport)
            line.state = "cut (fault)"
        elif incomplete is not None and incomplete.dropped:
            if pace:
                await _sleep_until(start + incomplete.t / pace)
            await _drop(transport)
            line.state = "dropped as recorded"
        else:
            line.state = "complete"
    finally:
        if line.state == "sending":
            line.state = "client disconnected"


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


def match_body(index: RecordingIndex, path: str, raw: bytes, *, hint: bool) -> _Entry | Response | None:
    """The recording that answers ``POST path`` with body ``raw``, or the error that answers it.

    With ``hint=False``, None where no recording answers (the 404 compares the body with every
    recording: see ``replay_worker``).
    """
    body = _parse_body(raw, path)
    if isinstance(body, Response):
        return body
    try:
        entry = index.find(path, body)
        if entry is None and hint:
            return _unknown_request(index, path, body)
    except RecursionError:  # read, but too deep to compare or quote
        return _error(400, f"The body of POST {path} is nested too deeply.")
    return entry


async def _matched(index: RecordingIndex, worker: BodyWorker, path: str, raw: bytes) -> _Entry | Response:
    """``match_body``, in the loop when the body is cheap to read and a recording answers it, else in
    the body worker."""
    found = match_body(index, path, raw, hint=False) if cheap(raw) else None
    if found is not None:
        return found
    if worker.busy:
        return _error(
            503,
            "The replay server is reading other large requests; send this one again later.",
            kind="server_error",
        )
    try:
        outcome = await worker.outcome(path, raw)
    except BrokenProcessPool:
        return _error(
            500, f"The replay server's body reader stopped while reading POST {path}.", kind="server_error"
        )
    if isinstance(outcome, str):
        entry = index.named(outcome)
        if entry is not None:
            return entry
        return _error(
            404, f"The recording {outcome!r} that answers this request was just removed. {_HOW_TO_LIST}"
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
    """The ASGI application: the three endpoints, answered from ``index`` at ``speed``, and the sent log."""
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
        entry = await _matched(index, worker, path, raw)
        if isinstance(entry, Response):
            return entry
        rec = stats.last_served = entry.recording
        if fault is not None and not rec.streamed:
            return _error(400, f"Header {FAULT_HEADER}: {rec.name!r} is not a streamed response.")
        line = _Sent(
            request=next(stats.requests),
            recording=rec.name,
            path=api_path(path),
            fault=request.headers.get(FAULT_HEADER),
            events_total=len(rec.events or []),
        )
        stats.sent.append(line)
        headers = {**_replay_headers(rec), REQUEST_ID_HEADER: str(line.request)}
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

    async def sent_log(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": stats.sent_log()})

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        path = request.url.path
        asked = f"{request.method} {path if len(path) <= _QUOTE_CHARS else path[:_QUOTE_CHARS] + '...'}"
        served = ", ".join([*(f"POST {p}" for p in ENDPOINTS), f"GET {SENT_LOG_PATH}"])
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
            Route(SENT_LOG_PATH, sent_log, methods=["GET"]),
        ],
        middleware=[Middleware(_LoopbackHostsOnly)],
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )
    app.state.stats = stats
    app.state.worker = worker  # closed by ReplayServer.stop
    return app


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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


class _ReplayProtocol(H11Protocol):
    """uvicorn's h11 protocol, with what the replay server needs from the connection.

    - Each request's scope notes when its head arrived (the schedule of a replay starts
      there: with many requests at once, a handler can start several milliseconds after
      its request came in) and the connection's transport (to drop it mid-stream).
    - A request's head must arrive whole within ``request_timeout`` of its first byte (or
      of the connection's start): a client trickling headers gets a 408 and the connection
      ends. (uvicorn times out only idle keep-alive connections; h11 caps a head at 16 KiB.)
    - A malformed request gets an OpenAI-shaped 400, where uvicorn sends plain text.
    """

    def __init__(self, *args: Any, request_timeout: float = REQUEST_TIMEOUT_S, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._request_timeout = request_timeout
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer = self.loop.call_later(self._request_timeout, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._head_timer is None and (self.cycle is None or self.cycle.response_complete):
            self._head_timer = self.loop.call_later(self._request_timeout, self._head_timed_out)
        super().data_received(data)

    def handle_events(self) -> None:
        # Called as data arrives, and for a pipelined request when the one before it is answered.
        arrived = self.loop.time()
        previous = self.cycle
        super().handle_events()
        if self.cycle is not None and self.cycle is not previous:
            self._stop_head_timer()
            self.cycle.scope[ARRIVAL_KEY] = arrived  # type: ignore[literal-required]
            self.cycle.scope[TRANSPORT_KEY] = self.transport  # type: ignore[literal-required]

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self._answer_and_close(408, "The request's head did not arrive in time.")

    def send_400_response(self, msg: str) -> None:
        self._answer_and_close(
            400,
            "The replay server cannot read this HTTP request: it is malformed, or its head is over 16 KiB.",
        )

    def _answer_and_close(self, status: int, message: str) -> None:
        body = json.dumps(_error_content(message, "invalid_request_error", None)).encode()
        head = (
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        )
        self.transport.write(head.encode() + body)
        self.transport.close()


def _precise_loop() -> asyncio.AbstractEventLoop:
    # epoll where there is one (any number of connections; waits rounded up to whole ms, which the
    # spin before each due time makes up for), else the platform's best selector.
    return asyncio.SelectorEventLoop(selectors.DefaultSelector())


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
    # Listening now lets clients connect (queued) before the server's loop starts; the backlog is
    # uvicorn's own default.
    sock.listen(2048)
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
        request_timeout: float = REQUEST_TIMEOUT_S,
    ) -> None:
        self.speed = check_speed(speed)
        self.index = RecordingIndex(recordings)
        self.host, self.port = host, port
        self.request_timeout = request_timeout
        self.stats = _Stats()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._app: Starlette | None = None

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

    @property
    def sent(self) -> list[dict[str, Any]]:
        """The sent log: per request answered from a recording, what went out (``GET /streamscope/sent``)."""
        return self.stats.sent_log()

    def _uvicorn(self) -> uvicorn.Server:
        self._app = create_app(self.index, self.speed, self.stats, request_timeout=self.request_timeout)
        config = uvicorn.Config(
            self._app,
            http=functools.partial(_ReplayProtocol, request_timeout=self.request_timeout),  # type: ignore[arg-type]
            lifespan="off",
            log_config=None,  # leave the host process's logging alone
            log_level="warning",
            access_log=False,
            # A recording's own server and date headers are sent as recorded, not after uvicorn's.
            server_header=False,
            date_header=False,
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
        try:
            with contextlib.suppress(KeyboardInterrupt):
                _run(self._uvicorn(), sock)
        finally:
            if self._app is not None:
                self._app.state.worker.close(wait=True)

    @property
    def loopback(self) -> bool:
        """Whether only this machine can reach the server."""
        return _is_loopback(self.host)

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
        if self._app is not None:
            self._app.state.worker.close()

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
