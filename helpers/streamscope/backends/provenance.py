"""Where a result came from: the recording that answered a stream's request, or the live server."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from ..replay import REQUEST_ID_HEADER
from .registry import shared_replay_server
from .switch import active_backend, resolve

__all__ = [
    "last_source",
    "sent_log",
    "sent_log_line",
    "source_of",
]


def last_source(backend: str | None = None) -> str:
    """Where the latest result came from, in one line: a recording's provenance label, or the live server.

    Notebooks print it beside every result, so that each figure says what produced it.
    """
    kind, base_url = resolve(backend)
    if kind == "local":
        base_url = f"local server {active_backend(backend).base_url}"
    if kind != "replay":
        return f"source: live {base_url}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    server = shared_replay_server()
    line = server.sent_line()  # the latest request the replay server answered
    served = server.recording(line["recording"]) if line is not None else None
    if line is None or served is None:
        return "source: nothing replayed yet"
    note = f" ({line['note']})" if line["note"] else ""  # what the answer said beside it (x-streamscope-note)
    return f"source: {served.label}{note}"


def _replay_request_id(stream: Any) -> int | None:
    """The replay server's id for the request that made ``stream`` (an SDK stream or an HTTP response)."""
    response = getattr(stream, "response", stream)  # the SDK's Stream keeps the HTTP response
    headers = getattr(response, "headers", None)
    if headers is None:
        raise TypeError(f"expected an SDK stream or an HTTP response, got {type(stream).__name__}")
    request_id = headers.get(REQUEST_ID_HEADER)
    return int(request_id) if request_id is not None else None


def source_of(stream: Any, backend: str | None = None) -> str:
    """Where one stream came from, in one line: the recording that answered its request, or the live server.

    With several streams at once, :func:`last_source` names only the latest; this names the one asked
    about (the replay server tags each answer with ``x-streamscope-request``).
    """
    kind, _ = resolve(backend)
    request_id = _replay_request_id(stream) if kind == "replay" else None
    if request_id is None:
        return last_source(backend)
    server = shared_replay_server()
    line = server.sent_line(request_id)
    name = line["recording"] if line is not None else None
    recording = server.recording(name) if name is not None else None
    if recording is None:
        return f"source: replay request {request_id}, recording {name or 'no longer known'}"
    return f"source: {recording.label}"


def sent_log_line(stream: Any, *, wait_s: float = 10.0, backend: str | None = None) -> dict[str, Any] | None:
    """What the replay server sent for ``stream``'s request, once it has stopped sending (at most ``wait_s``).

    A line of the replay server's sent log (``GET /streamscope/sent``): ``events_sent`` of
    ``events_total``, ``bytes_sent``, ``last_write_s`` and how it ended (``state``). None on a live
    backend: no live server tells a client what it sent or generated.
    """
    kind, _ = resolve(backend)
    request_id = _replay_request_id(stream) if kind == "replay" else None
    if request_id is None:
        return None
    deadline = time.monotonic() + wait_s
    while True:
        line = shared_replay_server().sent_line(request_id)
        if line is None or line["state"] != "sending" or time.monotonic() > deadline:
            return line
        time.sleep(0.01)


def sent_log(backend: str | None = None) -> list[dict[str, Any]] | None:
    """The replay server's sent log, a line per request it answered (oldest first); None on a live backend."""
    kind, _ = resolve(backend)
    return shared_replay_server().sent if kind == "replay" else None
