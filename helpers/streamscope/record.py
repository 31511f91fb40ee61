"""The recorder: make one real request to a live server and save the exchange as a recording.

``record(path, body, name=...)`` (or ``python -m streamscope record``) sends ``body``
to ``path`` on a live backend (``openai`` or the base URL of any OpenAI-compatible
server; see ``streamscope.backend``), streams the response, and writes
``NAME.json`` in the recording format (``streamscope.recording``). On the ``local``
backend it starts the local server, and the provenance also names the server's
version, the model file and its sha256, the CPU and the threads.

Timing: the clock (``time.perf_counter``) starts just before the request is sent;
each SSE event's ``t`` is when the read that completed it (its terminating blank
line) returned. A non-streamed response gets ``elapsed``, to its last byte.

Secrets never reach the file: request headers are not stored at all; response
headers are kept only if they are on an allow-list and carry no key, token,
secret, auth, cookie, organization or project in their name; and every
occurrence of the API key in the request or response text is replaced by
``[scrubbed]``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2

from . import __version__
from .backend import BackendError, active_backend, api_key_for, resolve
from .local import LocalServerError
from .recording import Event, Recording, api_path
from .sse import SSEDecoder
from .timing import model_of

SCRUBBED = "[scrubbed]"
KEPT_RESPONSE_HEADERS = frozenset(
    {
        "content-type",
        "date",
        "server",
        "openai-model",
        "openai-processing-ms",
        "openai-version",
        "x-request-id",
        "x-ratelimit-limit-requests",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-reset-requests",
    }
)
_SECRET_HEADER_WORDS = ("key", "token", "secret", "auth", "cookie", "organization", "project")
# An SSE event ends with a blank line; lines end in CRLF, LF or CR.
_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class RecordError(Exception):
    """The request could not be made or recorded; the message says why, in one line."""


def kept_headers(headers: httpx2.Headers) -> dict[str, str]:
    """The response headers a recording may keep: allowed, and nothing secret-sounding."""
    return {
        name: value
        for name, value in ((k.lower(), v) for k, v in headers.items())
        if name in KEPT_RESPONSE_HEADERS and not any(word in name for word in _SECRET_HEADER_WORDS)
    }


@dataclass
class _EventSplitter:
    """Cuts a byte stream into raw SSE events (each with its blank line) as pieces arrive.

    ``sse.SSEDecoder`` turns events into their fields; a recording keeps each event's
    text exactly as sent, so here we only need where each one ends.
    """

    buffer: bytes = b""

    def feed(self, piece: bytes) -> list[bytes]:
        # Look again from a little before the old end: a terminator may straddle two reads.
        start = max(0, len(self.buffer) - 3)
        self.buffer += piece
        events = []
        while match := _EVENT_END.search(self.buffer, start):
            events.append(self.buffer[: match.end()])
            self.buffer = self.buffer[match.end() :]
            start = 0
        return events


def _scrub(text: str, secret: str) -> str:
    return text.replace(secret, SCRUBBED) if secret else text


def _event(raw: bytes, arrived: float, api_key: str) -> Event:
    # Events end at an ASCII blank line, so a UTF-8 character is never cut in two here.
    return Event(round(arrived, 6), _scrub(raw.decode("utf-8", "replace"), api_key))


def _model_of(events: list[Event]) -> str | None:
    """The model the server says answered: from the first chunk (or Responses event) naming one."""
    decoder = SSEDecoder()
    for event in events:
        for sse in decoder.feed(event.raw.encode()):
            try:
                chunk = json.loads(sse.data)
            except json.JSONDecodeError:
                continue  # [DONE], or whatever a server sent: the recording keeps it as it came
            if isinstance(chunk, dict) and (model := model_of(chunk)):
                return str(model)
    return None


@dataclass
class _Exchange:
    status: int
    headers: httpx2.Headers
    events: list[Event] | None  # None: not an event stream, see content
    content: bytes
    elapsed: float


def _exchange(url: str, body: dict[str, Any], api_key: str) -> _Exchange:
    """POST ``body`` and read the answer, timing each SSE event as its last byte arrives."""
    headers = {"authorization": f"Bearer {api_key}", "accept-encoding": "identity"}
    splitter = _EventSplitter()
    events: list[Event] = []
    content = b""
    try:
        with httpx2.Client(timeout=httpx2.Timeout(30.0, read=300.0)) as http:
            start = time.perf_counter()
            with http.stream("POST", url, json=body, headers=headers) as response:
                streamed = response.headers.get("content-type", "").startswith("text/event-stream")
                for piece in response.iter_bytes():
                    arrived = time.perf_counter() - start
                    if streamed:
                        events += [_event(raw, arrived, api_key) for raw in splitter.feed(piece)]
                    else:
                        content += piece
                elapsed = time.perf_counter() - start
    except httpx2.HTTPError as exc:
        raise RecordError(f"POST {url} failed: {exc.__class__.__name__}: {exc}") from None
    if splitter.buffer:  # the stream ended inside an event: keep what arrived
        events.append(_event(splitter.buffer, elapsed, api_key))
    return _Exchange(response.status_code, response.headers, events if streamed else None, content, elapsed)


def record(
    path: str,
    body: dict[str, Any],
    *,
    name: str,
    out_dir: str | Path = ".",
    backend: str | None = None,
    source: str | None = None,
    notes: str | None = None,
) -> Recording:
    """Send ``body`` to ``path`` on a live backend and save the exchange as ``out_dir/name.json``.

    ``notes`` (what this server does differently, say) is added to the provenance's notes.
    """
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"recording name {name!r}: use letters, digits, '.', '_' and '-' (it is the file's stem)"
        )
    kind, base_url = resolve(backend)
    if kind == "replay":
        raise BackendError(
            "recording needs a live server: pass backend='openai' (with OPENAI_API_KEY), 'local', or the "
            "base URL of an OpenAI-compatible server (or set STREAMSCOPE_BACKEND)"
        )
    if kind == "local":
        from .local import shared_local_server

        base_url = active_backend(backend).base_url
        # Recorded with the model in memory, as a running server has it, not timed with its loading.
        shared_local_server().load(str(body.get("model", "")))
    assert base_url is not None
    api_key = api_key_for(kind)
    full_path = api_path(path)
    url = base_url + full_path.removeprefix("/v1")
    exchange = _exchange(url, body, api_key)
    if exchange.events is not None:
        response_body, model = None, _model_of(exchange.events)
    else:
        text = _scrub(exchange.content.decode("utf-8", "replace"), api_key)
        try:
            response_body = json.loads(text)
        except json.JSONDecodeError:
            response_body = text
        model = response_body.get("model") if isinstance(response_body, dict) else None
    server = urlsplit(base_url).hostname or base_url
    model = model or body.get("model", "?")
    clock = time.get_clock_info("perf_counter")
    provenance = {
        "source": source or f"recorded with `streamscope record` from {server}",
        "server": server,
        "model": model,
        "date": datetime.now(UTC).date().isoformat(),
        "method": "recorded",
        "timing_resolution_s": 1e-6,
        "notes": " ".join(
            filter(
                None,
                (
                    f"streamscope {__version__}, httpx2 {httpx2.__version__}. t: time.perf_counter() "
                    f"({clock.implementation}, resolution {clock.resolution:g} s, stored rounded to 1 us) "
                    "when the read holding the event's last byte returned, from just before the request "
                    "was sent.",
                    notes,
                ),
            )
        ),
    }
    if kind == "local":
        provenance.update(shared_local_server().provenance(str(body.get("model", ""))))
        provenance["source"] = source or "recorded with `streamscope record` from the local backend"
    recording = Recording(
        name=name,
        provenance=provenance,
        request={"method": "POST", "path": full_path, "body": json.loads(_scrub(json.dumps(body), api_key))},
        status=exchange.status,
        headers=kept_headers(exchange.headers),
        events=exchange.events,
        body=response_body,
        elapsed=None if exchange.events is not None else round(exchange.elapsed, 6),
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    recording.save(out / f"{name}.json")
    return recording


def _body_from(args: argparse.Namespace) -> dict[str, Any]:
    if args.body is not None and (args.model or args.message):
        raise ValueError("give either --body or --model with --message, not both")
    if args.body is None:
        if not (args.model and args.message):
            raise ValueError("give --body FILE (or - for stdin), or --model and --message")
        return {"model": args.model, "messages": [{"role": "user", "content": args.message}], "stream": True}
    try:
        text = sys.stdin.read() if args.body == "-" else Path(args.body).read_text(encoding="utf-8")
        body = json.loads(text)
    except OSError as exc:
        raise ValueError(f"cannot read --body {args.body}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"--body {args.body} is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ValueError(f"--body {args.body} must hold a JSON object")
    return body


def cli_record(args: argparse.Namespace) -> int:
    """``python -m streamscope record``. Exit 0: saved; 1: saved, but the server answered an error;
    2: nothing saved (bad input, or the request failed)."""
    try:
        rec = record(
            args.path,
            _body_from(args),
            name=args.name,
            out_dir=args.out,
            backend=args.backend,
            notes=args.notes,
        )
    except (ValueError, RecordError, LocalServerError, OSError) as exc:
        print(f"streamscope record: {exc}", file=sys.stderr)
        return 2
    where = Path(args.out) / f"{rec.name}.json"
    if rec.streamed:
        events = rec.events or []
        what = f"{len(events)} events over {events[-1].t if events else 0:.3f} s"
    else:
        what = f"one body after {rec.elapsed:.3f} s"
    origin = f"{rec.provenance['server']} ({rec.provenance['model']})"
    print(f"recorded {rec.name}: {what} from {origin}, saved to {where}")
    if rec.status >= 400:
        print(
            f"streamscope record: the server answered HTTP {rec.status}; the recording keeps it",
            file=sys.stderr,
        )
        return 1
    return 0
