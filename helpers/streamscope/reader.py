"""StreamReader: reads one stream beside the caller (a chart), and lowers the switch interval meanwhile."""

from __future__ import annotations

import inspect
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from .assemble import Assembler, AssembleResult, StreamFormatError
from .timing import StreamTimer, Timeline

__all__ = ["READER_SWITCH_INTERVAL_S", "SWITCH_INTERVAL", "StreamReader"]

# While the caller of a StreamReader computes (a chart's redraw) it holds the GIL; the reader, woken
# by the socket, then waits for it, and CPython only forces a hand-over after the switch interval
# (5 ms by default). The reader lowers the interval while it runs, so that a chunk's timestamp
# waits at most about this long, and restores it after. Measured (benchmarks/live_chart.py) with
# redraws nonstop: a thread blocked on a socket woke 5.4 ms late (p50) at 5 ms, 0.9 ms at 0.5 ms.
READER_SWITCH_INTERVAL_S = 0.0005


class _SwitchInterval:
    """The process-wide switch interval, lowered while any reader runs, restored when the last one ends.

    Counted, not saved per reader: a reader that starts while another runs (say, one left reading a
    stalled stream after Kernel > Interrupt) must not take the lowered value for the original.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._readers = 0
        self._saved: float | None = None

    @property
    def readers(self) -> int:
        return self._readers

    def lower(self) -> None:
        with self._lock:
            if self._readers == 0:
                self._saved = sys.getswitchinterval()
                sys.setswitchinterval(min(self._saved, READER_SWITCH_INTERVAL_S))
            self._readers += 1

    def restore(self) -> None:
        with self._lock:
            self._readers -= 1
            if self._readers == 0 and self._saved is not None:
                sys.setswitchinterval(self._saved)
                self._saved = None


SWITCH_INTERVAL = _SwitchInterval()


class StreamReader:
    """Reads one stream in a background thread (or a task), timestamping it with a :class:`StreamTimer`.

    ``factory`` creates the stream (it sends the request): the clock starts right before it is
    called, so the time to the first chunk includes sending the request. The reader only iterates
    the stream through the timer; the caller takes what arrived with :meth:`since`, meanwhile.
    An error in the stream is kept in :attr:`error` for the caller to re-raise.
    """

    def __init__(self) -> None:
        self.timer = StreamTimer()
        self.stream: Any = None  # what factory() made, once made (the SDK's stream: its response headers)
        self.error: BaseException | None = None
        self._finished = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    @property
    def arrived(self) -> int:
        """How many chunks have arrived so far."""
        return self.timer.arrived

    @property
    def started_at(self) -> float | None:
        """When the clock started (``time.perf_counter()``), right before the request was sent."""
        return self.timer.started_at

    @property
    def timeline(self) -> Timeline:
        """Every chunk that has arrived so far, with its time."""
        return self.timer.timeline

    def assembled(self) -> tuple[AssembleResult, str | None]:
        """The reply assembled from the chunks that arrived, and why it could not be, if it could not."""
        assembler, problem = Assembler(), None
        try:
            for chunk in self.timer.since(0).chunks:
                assembler.feed(chunk)
        except StreamFormatError as exc:  # charted anyway; the summary says it was not assembled
            problem = str(exc)
        return assembler.result(), problem

    def since(self, index: int) -> Timeline:
        """The chunks that arrived from ``index`` on."""
        return self.timer.since(index)

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the stream to end; True once it has."""
        return self._finished.wait(timeout)

    def wait_for_a_lull(self, quiet: float, timeout: float) -> None:
        """Wait until no chunk has arrived for ``quiet`` seconds (at most ``timeout``).

        Chunks often come in bursts (several in one network read), which the reader parses one
        after another; work started in the middle would take the CPU from it and delay the rest
        of the burst's timestamps.
        """
        deadline = time.perf_counter() + timeout
        seen = self.arrived
        while not self._finished.wait(quiet) and time.perf_counter() < deadline:
            arrived = self.arrived
            if arrived == seen:
                return
            seen = arrived

    def start(self, factory: Callable[[], Any]) -> StreamReader:
        """Read the stream ``factory()`` creates in a daemon thread, the switch interval lowered meanwhile."""
        if self._thread is not None:
            raise RuntimeError("a StreamReader reads one stream")
        self._thread = threading.Thread(
            target=self._read, args=(factory,), name="streamscope-reader", daemon=True
        )
        SWITCH_INTERVAL.lower()
        try:
            self._thread.start()
        except BaseException:
            SWITCH_INTERVAL.restore()
            raise
        return self

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()

    def stop(self) -> None:
        """Close the stream at its next chunk; what arrived is kept."""
        self._stop = True

    def _read(self, factory: Callable[[], Any]) -> None:
        try:
            self.timer.start()
            stream = self.stream = factory()
            for _ in self.timer.track(stream):
                if self._stop:
                    _close(stream)
                    break
        except BaseException as exc:  # re-raised by the caller, in its thread
            self.error = exc
        finally:
            SWITCH_INTERVAL.restore()
            self._finished.set()

    async def read_async(self, factory: Callable[[], Any]) -> None:
        """Read an async stream (``AsyncOpenAI``) here, in the caller's task or one it creates.

        ``factory()`` may return the stream or a coroutine that makes it (``AsyncOpenAI``'s
        ``create()``). A chunk that arrives while the loop runs other work is timestamped after it.
        """
        try:
            self.timer.start()
            stream = factory()
            if inspect.isawaitable(stream):
                stream = await stream
            self.stream = stream
            async for _ in self.timer.atrack(stream):
                pass
        except Exception as exc:  # re-raised by the caller
            self.error = exc
        finally:
            self._finished.set()


def _close(stream: Any) -> None:
    close = getattr(stream, "close", None)  # the SDK's Stream and generators have one
    if close is not None:
        close()
