"""The recording format's schema: what each field the replay server uses must hold, checked at load.

A recording file is JSON anyone can write, and the replay server runs inside a notebook kernel,
so every field it uses is checked once, when the file is read, rather than failing (or being
sent wrong) when a request is answered: :func:`first_problem` names the first field that does
not fit, as a path (``response.events[3].t``) and what it must hold. The rules:

- ``streamscope_recording``: 1; ``name``: a non-empty string; ``provenance``: an object;
- ``request``: an object with ``path`` (a non-empty string of printable ASCII), ``method``
  ``"POST"`` when present, ``body`` an object (or null, or absent);
- ``response.status``: a whole number from 200 to 599 (the server sends a body with every
  answer, which 1xx, 204, 205 and 304 cannot carry);
- ``response.headers``: an object whose names are HTTP tokens, each once (in any case), and
  whose values are strings HTTP can carry as they are (Latin-1, no control characters, no
  space at either end);
- ``response.events`` (a streamed response): a list of ``{"t", "raw"}`` objects, ``t`` a finite
  number of seconds >= 0 that never decreases, ``raw`` non-empty UTF-8 text ending with the
  blank line that ends an SSE event (the last event of an ``incomplete`` response may be cut);
- otherwise ``response.body``: JSON the server can send again (no NaN or Infinity, which Python's
  reader takes, and no lone surrogate from a ``\\ud800`` escape), and ``response.elapsed``: null,
  or seconds >= 0;
- ``response.incomplete``, when present: ``reason`` a string, ``t`` seconds >= 0, ``dropped``
  true or false.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from typing import Any

FORMAT_VERSION = 1

# RFC 9110 token characters, and a field value h11 sends as it is (no control characters, no
# space at either end: h11 refuses to send such a value, and the client would see a dropped connection).
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEADER_VALUE = re.compile(r"([\x21-\x7e\x80-\xff]([\t\x20-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?")
_PATH = re.compile(r"[\x21-\x7e]+")
_SSE_EVENT_END = ("\n\n", "\r\r", "\r\n\r\n", "\r\n\n", "\n\r\n")
_NO_BODY_STATUSES = frozenset({204, 205, 304})


def first_problem(data: Any) -> str | None:
    """The first field of ``data`` (a parsed recording file) that breaks the schema, as
    ``field: what it must hold, got ...``; None when the recording can be served."""
    return next(_problems(data), None)


def _got(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_seconds(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value) and value >= 0


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, from a "\ud800" escape
        return False
    return True


def _sendable(body: Any) -> bool:
    """Whether strict JSON can carry ``body``. Iterative: a body nests as deep as its reader allowed."""
    stack = [body]
    while stack:
        value = stack.pop()
        if type(value) is float and not math.isfinite(value):
            return False
        if type(value) is str and not _is_utf8(value):
            return False
        if type(value) is list:
            stack.extend(value)
        elif isinstance(value, Mapping):
            if not all(_is_utf8(key) for key in value):
                return False
            stack.extend(value.values())
    return True


def _problems(data: Any) -> Iterator[str]:
    if not isinstance(data, Mapping):
        yield f"the file must hold a JSON object, got {type(data).__name__}"
        return
    if data.get("streamscope_recording") != FORMAT_VERSION:
        yield (
            f"streamscope_recording: not a streamscope recording (format version "
            f"{_got(data.get('streamscope_recording'))}, expected {FORMAT_VERSION})"
        )
        return
    name = data.get("name")
    if not isinstance(name, str) or not name or not _is_utf8(name):
        yield f"name: must be a non-empty string, got {_got(name)}"
    if not isinstance(data.get("provenance"), Mapping):
        yield f"provenance: must be an object, got {_got(data.get('provenance'))}"
    yield from _request_problems(data.get("request"))
    yield from _response_problems(data.get("response"))
    yield from _untimed_problems(data)


def _untimed_problems(data: Mapping[str, Any]) -> Iterator[str]:
    # A source that kept no arrival times must not look timed: its events all sit at t = 0.
    provenance, response = data.get("provenance"), data.get("response")
    if not isinstance(provenance, Mapping) or provenance.get("per_chunk_timing") is not False:
        return
    events = response.get("events") if isinstance(response, Mapping) else None
    if isinstance(events, list) and any(isinstance(e, Mapping) and e.get("t") != 0 for e in events):
        yield "provenance: says per_chunk_timing is false, yet gives its events times other than 0"


def _request_problems(request: Any) -> Iterator[str]:
    if not isinstance(request, Mapping):
        yield f"request: must be an object, got {_got(request)}"
        return
    path = request.get("path")
    if not isinstance(path, str) or not _PATH.fullmatch(path):
        yield f"request.path: must be an API path such as '/v1/chat/completions', got {_got(path)}"
    if "method" in request and request["method"] != "POST":
        yield f"request.method: must be 'POST' (the server answers POST only), got {_got(request['method'])}"
    body = request.get("body")
    if body is not None and not isinstance(body, Mapping):
        yield f"request.body: must be a JSON object, got {type(body).__name__}"


def _response_problems(response: Any) -> Iterator[str]:
    if not isinstance(response, Mapping):
        yield f"response: must be an object, got {_got(response)}"
        return
    status = response.get("status", 200)
    if type(status) is not int or not 200 <= status <= 599 or status in _NO_BODY_STATUSES:
        yield f"response.status: must be a whole number 200-599 (not 204, 205, 304), got {_got(status)}"
    yield from _header_problems(response.get("headers", {}))
    incomplete = response.get("incomplete")
    if incomplete is not None:
        yield from _incomplete_problems(incomplete)
    events = response.get("events")
    if events is not None:
        yield from _event_problems(events, cut_allowed=incomplete is not None)
        return
    if "body" not in response:
        yield "response: must hold events (a streamed response) or a body"
    elif not _sendable(response["body"]):
        yield "response.body: holds NaN, Infinity or a lone surrogate, which the server cannot send as JSON"
    elapsed = response.get("elapsed")
    if elapsed is not None and not _is_seconds(elapsed):
        yield f"response.elapsed: must be null or a finite number of seconds >= 0, got {_got(elapsed)}"


def _header_problems(headers: Any) -> Iterator[str]:
    if not isinstance(headers, Mapping):
        yield f"response.headers: must be an object, got {_got(headers)}"
        return
    seen: set[str] = set()
    for name, value in headers.items():
        where = f"response.headers[{_got(name)}]"
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            yield f"{where}: not an HTTP header name (letters, digits and !#$%&'*+-.^_`|~ only)"
        elif name.lower() in seen:
            yield f"{where}: a header named {name.lower()!r} (in any case) is given twice"
        elif not isinstance(value, str) or not _HEADER_VALUE.fullmatch(value):
            yield (
                f"{where}: must be a string HTTP carries as it is (Latin-1, no control characters, "
                f"no space at either end), got {_got(value)}"
            )
        else:
            seen.add(name.lower())


def _incomplete_problems(incomplete: Any) -> Iterator[str]:
    if not isinstance(incomplete, Mapping):
        yield f"response.incomplete: must be an object, got {_got(incomplete)}"
        return
    if not isinstance(incomplete.get("reason"), str):
        yield f"response.incomplete.reason: must be a string, got {_got(incomplete.get('reason'))}"
    if not _is_seconds(incomplete.get("t")):
        yield f"response.incomplete.t: must be finite seconds >= 0, got {_got(incomplete.get('t'))}"
    if type(incomplete.get("dropped")) is not bool:
        yield f"response.incomplete.dropped: must be true or false, got {_got(incomplete.get('dropped'))}"


def _event_problems(events: Any, *, cut_allowed: bool) -> Iterator[str]:
    if not isinstance(events, list):
        yield f"response.events: must be a list, got {_got(events)}"
        return
    previous = 0.0
    for i, event in enumerate(events):
        where = f"response.events[{i}]"
        if not isinstance(event, Mapping):
            yield f"{where}: must be an object with t and raw, got {_got(event)}"
            return
        t, raw = event.get("t"), event.get("raw")
        if not _is_seconds(t):
            yield f"{where}.t: must be a finite number of seconds >= 0, got {_got(t)}"
            return
        if t < previous:
            yield f"{where}.t: {t!r} is before the event before it ({previous!r}): events go in arrival order"
            return
        previous = t
        if not isinstance(raw, str) or not raw or not _is_utf8(raw):
            yield f"{where}.raw: must be non-empty UTF-8 text, got {_got(raw)}"
            return
        if not raw.endswith(_SSE_EVENT_END) and not (cut_allowed and i == len(events) - 1):
            yield (
                f"{where}.raw: must end with the blank line that ends an SSE event (only the last event "
                f"of an incomplete response may be cut), got {_got(raw[-20:])}"
            )
            return
