"""The recorder: make one real request to a live server and save the exchange as a recording.

``record(path, body, name=...)`` (or ``python -m streamscope record``, see ``streamscope.cli``) sends ``body``
to ``path`` on a live backend (``openai`` or the base URL of any OpenAI-compatible
server; see ``streamscope.backends.switch``), streams the response, and writes
``NAME.json`` in the recording format (``streamscope.recording``). What the recorder
cannot see from the wire (the server's version, the model file and its sha256, the CPU, the
threads, what the server does differently) is given by the caller: ``source``, ``server``,
``provenance=`` fields and ``note``, which ``python -m streamscope record`` takes as options. On
the ``local`` backend it starts the local server and fills those in itself.

Timing: the clock (``time.perf_counter``) starts just before the request is sent;
each SSE event's ``t`` is when the read that completed it (its terminating blank
line) returned. A non-streamed response gets ``elapsed``, to its last byte.

Secrets never reach the file: request headers are not stored at all; response
headers are kept only if they are on an allow-list and carry no key, token,
secret, auth, cookie, organization or project in their name; and every
occurrence of the API key in the request, the kept headers or the response text
is replaced by ``[scrubbed]``.

Nothing is lost, nothing is overwritten: a response that ends early (the
connection breaks, or a stream ends without what the assembler needs to call it
complete: ``[DONE]``, every finish reason) keeps everything that arrived and is
marked ``incomplete`` in the recording (``streamscope.recording``), which the
replay server replays as it ended. An existing ``NAME.json`` is replaced only with
``force=True`` (``--force``), and is checked before the request is sent.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2

from . import __version__
from .assemble import assemble_sse
from .backends.registry import shared_local_server
from .backends.switch import active_backend, api_key_for, resolve
from .chunks import model_of, sse_payloads
from .errors import BackendError, RecordError, RecordingError, StreamFormatError
from .matching import api_path
from .recording import Event, Incomplete, Recording, event_bytes
from .sse import EventSplitter

__all__ = [
    "KEPT_RESPONSE_HEADERS",
    "SCRUBBED",
    "kept_headers",
    "record",
]

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
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def kept_headers(headers: httpx2.Headers, secret: str = "") -> dict[str, str]:
    """The response headers a recording may keep: allowed, nothing secret-sounding, ``secret`` scrubbed."""
    return {
        name: _scrub(value, secret)
        for name, value in ((k.lower(), v) for k, v in headers.items())
        if name in KEPT_RESPONSE_HEADERS and not any(word in name for word in _SECRET_HEADER_WORDS)
    }


def _scrub(text: str, secret: str) -> str:
    return text.replace(secret, SCRUBBED) if secret else text


def _event(raw: bytes, arrived: float, api_key: str) -> Event:
    # Events end at an ASCII blank line, so a UTF-8 character is never cut in two here.
    return Event(round(arrived, 6), _scrub(raw.decode("utf-8", "replace"), api_key))


def _model_of(events: list[Event]) -> str | None:
    """The model the server says answered: from the first chunk (or Responses event) naming one."""
    for _, chunks in sse_payloads(event_bytes(events)):
        for chunk in chunks:
            # [DONE], or whatever else a server sent, names none: the recording keeps it as it came.
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
    broke: str | None  # why the body broke off before its end, if it did


def _exchange(url: str, body: dict[str, Any], api_key: str) -> _Exchange:
    """POST ``body`` and read the answer, timing each SSE event as its last byte arrives."""
    headers = {"authorization": f"Bearer {api_key}", "accept-encoding": "identity"}
    splitter = EventSplitter()
    events: list[Event] = []
    content = b""
    broke = None
    try:
        with httpx2.Client(timeout=httpx2.Timeout(30.0, read=300.0)) as http:
            start = time.perf_counter()
            with http.stream("POST", url, json=body, headers=headers) as response:
                streamed = response.headers.get("content-type", "").startswith("text/event-stream")
                try:
                    for piece in response.iter_bytes():
                        arrived = time.perf_counter() - start
                        if streamed:
                            events += [_event(raw, arrived, api_key) for raw in splitter.feed(piece)]
                        else:
                            content += piece
                except httpx2.HTTPError as exc:  # the body broke off: what arrived is kept
                    broke = _scrub(f"{exc.__class__.__name__}: {exc}", api_key)
                elapsed = time.perf_counter() - start
    except httpx2.HTTPError as exc:
        raise RecordError(f"POST {url} failed: {exc.__class__.__name__}: {exc}") from None
    if splitter.buffer:  # the stream ended inside an event: keep what arrived
        events.append(_event(splitter.buffer, elapsed, api_key))
    streamed_events = events if streamed else None
    return _Exchange(response.status_code, response.headers, streamed_events, content, elapsed, broke)


def _incomplete(exchange: _Exchange) -> Incomplete | None:
    """How the response ended early, if it did: the connection broke, or the stream is not whole."""
    ended = round(exchange.elapsed, 6)
    if exchange.broke is not None:
        return Incomplete(f"the connection broke: {exchange.broke}", ended, dropped=True)
    if exchange.events is None:
        return None
    try:
        result = assemble_sse(b"".join(event_bytes(exchange.events)))
    except StreamFormatError:
        return None  # not a stream of OpenAI events: nothing to judge it by
    return None if result.complete else Incomplete(result.reason or "incomplete", ended, dropped=False)


def _save_new(recording: Recording, path: Path, force: bool) -> None:
    """Write the file whole (a server reading the folder never sees half of it); replace only if forced."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(recording.dumps(), encoding="utf-8")
    if force:
        os.replace(partial, path)
        return
    try:
        os.link(partial, path)  # fails if the name is taken: no check-then-write race
    except FileExistsError:
        raise RecordError(
            f"{path} appeared while recording; this recording is kept as {partial} (or rerun with --force)"
        ) from None
    partial.unlink()


def record(
    path: str,
    body: dict[str, Any],
    *,
    name: str,
    out_dir: str | Path = ".",
    backend: str | None = None,
    source: str | None = None,
    server: str | None = None,
    note: str | None = None,
    provenance: dict[str, Any] | None = None,
    force: bool = False,
) -> Recording:
    """Send ``body`` to ``path`` on a live backend and save the exchange as ``out_dir/name.json``.

    ``source``, ``server`` and ``note`` describe what answered, for the provenance: a loopback
    URL's host says nothing about the proxy or model behind it (``note`` is added to the notes);
    ``provenance`` fields (``model_file``, ``model_sha256``, ``cpu``, ``threads``, ...) replace or
    extend the ones the recorder fills in. An existing file is replaced only if ``force``. A
    response that ended early is saved with what arrived, its ``incomplete`` saying how it ended.
    """
    if not _NAME.fullmatch(name):
        raise RecordingError(
            f"recording name {name!r}: use letters, digits, '.', '_' and '-' (it is the file's stem)"
        )
    target = Path(out_dir) / f"{name}.json"
    if target.exists() and not force:
        raise RecordError(f"{target} exists: choose another --name, or pass --force to replace it")
    kind, base_url = resolve(backend)
    if kind == "replay":
        raise BackendError(
            "recording needs a live server: pass backend='openai' (with OPENAI_API_KEY), 'local', or the "
            "base URL of an OpenAI-compatible server (or set STREAMSCOPE_BACKEND)"
        )
    if kind == "local":
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
    server = server or urlsplit(base_url).hostname or base_url
    model = model or body.get("model", "?")
    clock = time.get_clock_info("perf_counter")
    fields = {
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
                    note,
                ),
            )
        ),
    }
    if kind == "local":
        fields.update(shared_local_server().provenance(str(body.get("model", ""))))
        fields["source"] = source or "recorded with `streamscope record` from the local backend"
    fields.update(provenance or {})
    recording = Recording(
        name=name,
        provenance=fields,
        request={"method": "POST", "path": full_path, "body": json.loads(_scrub(json.dumps(body), api_key))},
        status=exchange.status,
        headers=kept_headers(exchange.headers, api_key),
        events=exchange.events,
        body=response_body,
        elapsed=None if exchange.events is not None else round(exchange.elapsed, 6),
        incomplete=_incomplete(exchange),
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    _save_new(recording, target, force)
    return recording
