"""How far a replayed stream strayed from its recorded schedule: the words a chart says about it.

A chart drawn on a busy machine (a shared hub, a Binder pod) shows gaps the recording never had.
So each chart reports its own error, from two figures per stream:

- the replay server's send lag: per event, when its write went out against when it was due
  (the sent log's ``sent_s`` and ``due_s``), p50 and p99;
- the reader's receive lag: per chunk, when the SDK handed it over against when the server
  wrote it. Known only when the server is the kernel's own replay server (the same machine,
  the same monotonic clock) and the chunks pair one to one with the events sent.

Above :data:`BUSY_P99_MS` at p99 the chart says in words that the machine was busy, and by how
much. A live backend has no schedule, and the chart says that instead.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .timing import Timeline

if TYPE_CHECKING:
    from .reader import StreamReader

__all__ = ["BUSY_P99_MS", "StreamLag", "reader_lag", "stream_lag"]

# Above this p99 lag (send or receive) a chart says the machine was busy. A quiet 2-core machine
# keeps p99 under 1 ms (benchmarks/replay.py); 5 ms is a third of a typical gap between tokens
# (15-50 ms), the point where a learner could read a step in the curve that the recording lacks.
BUSY_P99_MS = 5.0


def _p50_p99(values_ms: list[float]) -> tuple[float, float]:
    if len(values_ms) == 1:
        return values_ms[0], values_ms[0]
    cuts = statistics.quantiles(values_ms, n=100, method="inclusive")
    return statistics.median(values_ms), cuts[98]


@dataclass(frozen=True)
class StreamLag:
    """One stream's lag against its schedule, in milliseconds (None: not known), or why there is none."""

    send_p50_ms: float | None = None
    send_p99_ms: float | None = None
    receive_p50_ms: float | None = None
    receive_p99_ms: float | None = None
    no_schedule: str | None = None  # why there is no schedule to compare with

    @property
    def worst_p99_ms(self) -> float:
        return max(v for v in (self.send_p99_ms, self.receive_p99_ms, 0.0) if v is not None)

    @property
    def busy(self) -> bool:
        """Whether the machine disturbed the stream beyond :data:`BUSY_P99_MS` (p99)."""
        return self.worst_p99_ms > BUSY_P99_MS

    def describe(self) -> str:
        """A few words for under a chart."""
        if self.no_schedule is not None:
            return self.no_schedule
        said = f"replay lag p50 {self.send_p50_ms:.2f} ms / p99 {self.send_p99_ms:.2f} ms"
        if self.receive_p99_ms is not None:
            said += f", receive lag p50 {self.receive_p50_ms:.2f} ms / p99 {self.receive_p99_ms:.2f} ms"
        if self.busy:
            said = (
                f"MACHINE BUSY: chunks {self.worst_p99_ms:.1f} ms late at p99, so some gaps "
                f"here are this machine's, not the recording's ({said})"
            )
        return said


def _same_clock() -> bool:
    # The server stamps with time.monotonic (asyncio's loop.time), the reader with time.perf_counter.
    clocks = (time.get_clock_info(name).implementation for name in ("monotonic", "perf_counter"))
    return len(set(clocks)) == 1


def lag_of(line: dict[str, Any], timeline: Timeline | None, started_at: float | None) -> StreamLag:
    """The lag of the stream whose sent-log line is ``line``, read as ``timeline`` from ``started_at``."""
    due, sent = line.get("due_s") or [], line.get("sent_s") or []
    if not due:
        if line.get("events_total"):
            return StreamLag(no_schedule="replayed unpaced (speed 0): no schedule to measure lag against")
        return StreamLag(no_schedule="not streamed: no schedule to measure lag against")
    send = _p50_p99([(s - d) * 1000 for s, d in zip(sent, due, strict=True)])
    receive: tuple[float | None, float | None] = (None, None)
    arrived_at = line.get("arrived_at")
    if timeline is not None and started_at is not None and arrived_at is not None and _same_clock():
        chunks = len(timeline.offsets)
        # The SDK yields one chunk per event, except a chat stream's closing [DONE].
        if chunks and chunks in (len(sent), len(sent) - 1):
            received = [
                (started_at + offset - (arrived_at + written)) * 1000
                for offset, written in zip(timeline.offsets, sent, strict=False)
            ]
            receive = _p50_p99(received)
    return StreamLag(send[0], send[1], receive[0], receive[1])


def stream_lag(
    stream: Any, timeline: Timeline | None = None, started_at: float | None = None
) -> StreamLag | None:
    """The lag of ``stream`` (an SDK stream), from the sent log of the kernel's replay server.

    ``timeline`` and ``started_at`` (a :class:`~streamscope.reader.StreamReader`'s) give the
    receive lag too. A stream from any other server (a live backend) has no schedule; one that
    came over no HTTP connection at all (chunks made in code) has no lag either way: None.
    """
    from .backends.provenance import replay_sent_line  # the backends start servers: load them when asked

    if getattr(getattr(stream, "response", stream), "headers", None) is None:
        return None
    line = replay_sent_line(stream)
    if line is None:
        return StreamLag(no_schedule="not from the replay server: no schedule to measure lag against")
    return lag_of(line, timeline, started_at)


def reader_lag(reader: StreamReader) -> StreamLag | None:
    """The lag of the stream a reader read (None if it never made one: its request failed)."""
    if reader.stream is None:
        return None
    return stream_lag(reader.stream, reader.timeline, reader.started_at)
