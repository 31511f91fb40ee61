"""Sending a recording: its events at their recorded pace, the faults asked for, and the sent log."""

from __future__ import annotations

import asyncio
import bisect
import heapq
import itertools
import json
import math
import weakref
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ..matching import RESPONSES, ApiPath
from ..recording import Recording
from .contract import FAULT_HEADER, SENT_LOG_LENGTH, Fault
from .index import _Entry

# Recorded response headers that describe the original connection, not the content.
_HOP_HEADERS = frozenset(
    {"content-length", "transfer-encoding", "content-encoding", "connection", "keep-alive"}
)


# Wake this long before a wait is due, then spin to it. The loop's wait ends to the microsecond
# (server._PreciseSelector), but a process asleep on this machine's virtual CPUs is woken 0.5-1 ms
# after its timer: without the spin every event went out about 0.5 ms late (a median), with it
# 0.18 ms after its due time, its write included, for a spin of one callback at most 0.6 ms per due
# time (the server then takes 4.3% of a core for one stream, 3.3% without the spin; the spin of
# 1.1 ms per stream before this one, 3.5%).
_WAKE_LEAD_S = 0.0006


class _Deadlines:
    """One timer and one spin for every wait of a loop's streams, the waits due together released
    in the order they were asked for.

    With a timer and a spin per wait, a hundred streams cost every turn of the loop a hundred task
    steps, and asyncio's heap does not keep the order of timers due at the same time: a hundred
    streams whose requests arrived together (dated alike: ``server._ReplayProtocol``) wrote each
    event in a new order, a stream first one time was last the next, some milliseconds later, and
    its gaps were off by as much. Here the order is kept (due time, then the order of asking), so
    each stream keeps its place in the burst, and its own pace.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._waits: list[tuple[float, int, asyncio.Future[None]]] = []  # a heap
        self._order = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due = math.inf
        self._spinning = False

    async def until(self, due: float) -> None:
        if self._loop.time() >= due:
            return
        waiter = self._loop.create_future()
        heapq.heappush(self._waits, (due, next(self._order), waiter))
        if due - _WAKE_LEAD_S < self._timer_due and not self._spinning:
            self._wake_at(due - _WAKE_LEAD_S)
        await waiter  # a wait cancelled stays in the heap, done: _release skips it

    def _wake_at(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_due = self._loop.call_at(when, self._release), when

    def _release(self) -> None:
        self._timer, self._timer_due = None, math.inf
        now, waits = self._loop.time(), self._waits
        while waits and waits[0][0] <= now:
            waiter = heapq.heappop(waits)[2]
            if not waiter.done():
                waiter.set_result(None)
        self._spinning = bool(waits) and waits[0][0] - _WAKE_LEAD_S <= now
        if self._spinning:
            self._loop.call_soon(self._release)
        elif waits:
            self._wake_at(waits[0][0] - _WAKE_LEAD_S)


_deadlines: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Deadlines] = weakref.WeakKeyDictionary()


async def _sleep_until(due: float) -> None:
    """Sleep until ``loop.time()`` reaches ``due``: to the microsecond on the server's loop
    (``server._PreciseSelector``), to the millisecond on a plain epoll loop."""
    loop = asyncio.get_running_loop()
    deadlines = _deadlines.get(loop)
    if deadlines is None:
        deadlines = _deadlines[loop] = _Deadlines(loop)
    await deadlines.until(due)


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
