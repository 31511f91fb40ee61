"""Server-Sent Events, read incrementally: whole raw events, or their fields (WHATWG's rules).

Feed it the response body in whatever pieces the network delivers; it returns each
event as soon as the blank line that ends it has arrived::

    decoder = SSEDecoder()
    for piece in body_pieces:
        for event in decoder.feed(piece):
            ...
    for event in decoder.close():
        ...

What the WHATWG "event stream interpretation" asks for, and this does: lines end in
LF, CRLF or CR (a CR at the end of one piece and an LF at the start of the next are
one line end); a leading UTF-8 BOM is dropped; lines starting with ``:`` are
comments; the ``event``, ``data``, ``id`` and ``retry`` fields (a single space after
the colon is not part of the value); several ``data`` lines join with LF; a block
without data dispatches nothing; an ``id`` persists to later events; unknown fields
are ignored. Lines are split on bytes and decoded one at a time, so a UTF-8
character split across two reads is never broken; invalid UTF-8 becomes U+FFFD.

One deliberate difference: the standard discards an event the stream ends inside
(a browser would reconnect and ask again). A recorded or interrupted body cannot be
asked again, so ``close()`` returns that last, unterminated event too, and callers
can tell it apart because it comes from ``close()``.

Why our own code rather than a library: ``httpx-sse`` imports httpx, and the openai
SDK's decoder imports openai; the ``assemble`` command must start without either.
This is the whole algorithm in about a hundred lines, with no imports.

:class:`EventSplitter` cuts the same bytes into raw events instead (each with its blank line,
exactly as sent): what a recording keeps.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

__all__ = [
    "EventSplitter",
    "SSEDecoder",
    "ServerSentEvent",
]

_BOM = b"\xef\xbb\xbf"
# An SSE event ends with a blank line; lines end in CRLF, LF or CR.
_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")


class ServerSentEvent(NamedTuple):
    """One dispatched event. ``id`` is the stream's last event id at dispatch time;
    ``retry`` is the reconnection time (ms) given in this event's block, if any."""

    event: str = "message"
    data: str = ""
    id: str = ""
    retry: int | None = None


# tuple.__new__ skips the NamedTuple's Python-level __new__: about 0.2 us of each event.
_new_event = tuple.__new__


class SSEDecoder:
    """Turns the bytes of an event stream into `ServerSentEvent`s, piece by piece."""

    def __init__(self) -> None:
        self._pending = b""  # the start of a line whose end has not arrived yet
        self._after_cr = False  # the last piece ended with CR: a leading LF belongs to it
        self._at_start = True  # the BOM check has not been made yet
        self._data: list[str] = []
        self._event = ""
        self._last_id = ""
        self._retry: int | None = None

    def feed(self, piece: bytes) -> list[ServerSentEvent]:
        """Consume the next bytes of the stream; return the events they complete."""
        if self._after_cr and piece:
            self._after_cr = False
            if piece[:1] == b"\n":
                piece = piece[1:]
        buffer = self._pending + piece if self._pending else piece
        if self._at_start:
            if len(buffer) < len(_BOM) and _BOM.startswith(buffer):
                self._pending = buffer  # too short to tell whether a BOM starts the stream
                return []
            self._at_start = False
            if buffer.startswith(_BOM):
                buffer = buffer[len(_BOM) :]
        if not buffer:
            self._pending = b""
            return []
        lines = buffer.splitlines()
        last = buffer[-1:]
        if last == b"\r":
            self._after_cr = True
            self._pending = b""
        elif last == b"\n":
            self._pending = b""
        else:
            self._pending = lines.pop()
        return self._process(lines)

    def close(self) -> list[ServerSentEvent]:
        """End of stream: return the event it ended inside, if it holds data."""
        lines = [self._pending, b""] if self._pending else [b""]  # the blank line that never came
        self._pending = b""
        return self._process(lines)

    def _process(self, lines: list[bytes]) -> list[ServerSentEvent]:
        events: list[ServerSentEvent] = []
        data = self._data
        for line in lines:
            if line[:6] == b"data: ":  # by far the most common line: handled first
                data.append(line[6:].decode("utf-8", "replace"))
            elif not line:
                if data:
                    text = data[0] if len(data) == 1 else "\n".join(data)
                    fields = (self._event or "message", text, self._last_id, self._retry)
                    events.append(_new_event(ServerSentEvent, fields))
                    data.clear()
                self._event = ""
                self._retry = None
            elif line[:1] != b":":
                self._field(line)
        return events

    def _field(self, line: bytes) -> None:
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value.decode("utf-8", "replace"))
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"id":
            if b"\0" not in value:
                self._last_id = value.decode("utf-8", "replace")
        elif name == b"retry" and value.isdigit():
            self._retry = int(value)


@dataclass
class EventSplitter:
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
