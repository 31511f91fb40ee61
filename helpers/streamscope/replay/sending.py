"""Sending a recording: its events at their recorded pace, the faults asked for, and the sent log."""

from __future__ import annotations

import asyncio
import bisect
import itertools
import json
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ..matching import RESPONSES, ApiPath
from ..recording import Recording
from .contract import FAULT_HEADER, SENT_LOG_LENGTH, Fault
from .index import _Entry

# Wake this long before an event is due, then spin. epoll rounds a wait up to whole milliseconds, so
# a wake planned 1.1 ms early comes 0.1-1.1 ms early; the spin covers the rest. (On select(), which
# takes microseconds, 0.5 ms of spin gave a median 0.01 ms late, against 0.29 ms without a spin.)
_SPIN_LEAD_S = 0.0011
# Recorded response headers that describe the original connection, not the content.
_HOP_HEADERS = frozenset(
    {"content-length", "transfer-encoding", "content-encoding", "connection", "keep-alive"}
)


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
    note: str | None  # what the answer said beside the recording (NOTE_HEADER), if anything
    events_sent: int = 0  # whole events written to the connection
    bytes_sent: int = 0
    last_write_s: float | None = None  # seconds from the request's arrival to the latest write
    # The schedule and how it was kept, per event sent: its due time and when its write went out, in
    # seconds from the request's arrival (empty at speed 0: no schedule); ``arrived_at`` is that
    # arrival on the server's clock (``time.monotonic()``), for a reader on this machine to compare.
    arrived_at: float | None = None
    due_s: list[float] = field(default_factory=list)
    sent_s: list[float] = field(default_factory=list)
    state: str = (
        "sending"  # then: complete, client disconnected, cut (fault), error sent (fault), dropped as recorded
    )

    def snapshot(self) -> dict[str, Any]:
        """The line as a dict, read from another thread while the server may still be writing it.

        The state is read first: the server sets it after its last change to the figures, so a
        snapshot that says the sending ended holds the final figures.
        """
        state = self.state
        return {**asdict(self), "state": state}


class _Stats:
    """What the server is doing now and what it sent; read by tests, benchmarks and notebooks."""

    def __init__(self) -> None:
        self.active_streams = 0
        self.sent: deque[_Sent] = deque(maxlen=SENT_LOG_LENGTH)
        self.requests = itertools.count(1)

    def sent_log(self) -> list[dict[str, Any]]:
        return [line.snapshot() for line in list(self.sent)]


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


def _fault_event(path: ApiPath, after: int) -> bytes:
    message = f"A server error staged by the replay server after event {after} ({FAULT_HEADER})."
    error = {"message": message, "type": "server_error", "param": None, "code": "streamscope_fault"}
    if path == RESPONSES:
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
    line.arrived_at = start
    try:
        for first, end, stall in parts:
            if stall and not pace:  # no waiting, except where a stall was asked for
                await asyncio.sleep(stall)
            part = replace(entry, offsets=entry.offsets[first:end], payloads=entry.payloads[first:end])
            async for piece in _paced_events(part, start + stall, pace, stats):
                yield piece  # returns once the server has written it to the connection
                written = line.last_write_s = loop.time() - start
                line.bytes_sent += len(piece)
                sent_before, line.events_sent = line.events_sent, bisect.bisect_right(ends, line.bytes_sent)
                if pace:
                    for k in range(sent_before, line.events_sent):
                        line.due_s.append(round(stall + entry.offsets[k] / pace, 6))
                        line.sent_s.append(round(written, 6))
        incomplete = entry.recording.incomplete
        if fault is not None and fault.error_after is not None:
            error = _fault_event(entry.path, last)
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
