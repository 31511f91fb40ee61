"""LiveChart: one stream drawn while it arrives, its text growing beside the chart."""

from __future__ import annotations

import asyncio
import html
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..assemble import AssembleResult
from ..chunks import text_and_output, tool_arguments
from ..lag import StreamLag, reader_lag
from ..reader import StreamReader
from ..timing import LatencyMetrics, Timeline
from ._base import (
    _TEXT_STYLE,
    LULL_S,
    _ChartBase,
    _followed_by_a_static_copy,
    _live_box,
    _new_figure,
)

__all__ = [
    "CONTENT",
    "TOOL_ARGUMENTS",
    "LiveChart",
    "StreamPart",
    "TimelineView",
]


@dataclass(frozen=True)
class StreamPart:
    """The part of each chunk a live chart draws, and the words the chart uses for it."""

    piece: Callable[[Any], str]  # the chunk's piece of this part, "" for none
    noun: str  # "46 chunks (43 with {noun})"
    unit: str  # what the curve counts
    axis: str  # the y axis's title
    first: str  # the marker at the first piece


CONTENT = StreamPart(
    piece=lambda chunk: text_and_output(chunk)[0],
    noun="content",
    unit="content chunks",
    axis="content chunks / tokens received",
    first="first token",
)
"""The generated text (``delta.content``, a completion's ``text``): the default."""
TOOL_ARGUMENTS = StreamPart(
    piece=tool_arguments,
    noun="arguments",
    unit="argument fragments",
    axis="chunks with an argument fragment received",
    first="first argument fragment",
)
"""The fragments of tool-call arguments (``delta.tool_calls[].function.arguments``)."""


class TimelineView:
    """The widgets of a live chart, drawing a :class:`~streamscope.timing.Timeline` as it grows.

    :meth:`draw` adds the chunks that arrived since the last call: those with a piece of ``part``
    (the content, by default) to the curve, their pieces to the text box; the first one also gets
    the first-token marker. It draws and does nothing else (no assembling, no timing). ``figure`` is
    the plotly ``FigureWidget``, ``text_widget`` the text beside it, ``status_widget`` a line of text
    below, ``widget`` the whole.
    """

    def __init__(
        self,
        title: str,
        *,
        baseline_seconds: float | None = None,
        baseline_tokens: int | None = None,
        label: str = "",
        part: StreamPart = CONTENT,
    ) -> None:
        self.part = part
        self.chunks = 0  # chunks drawn so far, with content or not
        self.updates = 0  # redraws done, each one batch_update
        self._xs: list[float] = []  # arrival offsets of the chunks with a piece
        self._ys: list[int] = []  # chunks with a piece received so far, at each of them
        self._pieces: list[str] = []
        self.title = title
        self.baseline_seconds, self.baseline_tokens = baseline_seconds, baseline_tokens

        self.figure = _new_figure(title, "seconds since the request was sent", [f"streamed: {part.unit}"])
        self.figure.update_layout(
            yaxis_title=part.axis,
            # The first-token marker, built hidden: the redraw that shows it sets four values.
            shapes=[
                {"type": "line", "yref": "paper", "y0": 0, "y1": 1, "line_dash": "dot", "visible": False}
            ],
            annotations=[{"yref": "paper", "y": 1, "showarrow": False, "xanchor": "left", "visible": False}],
        )
        if baseline_seconds is not None and baseline_tokens is not None:
            self.figure.add_scatter(
                x=[0.0, baseline_seconds],
                y=[0, baseline_tokens],
                name="non-streamed: completion tokens",
                mode="lines",
                line_shape="hv",
                line_dash="dash",
            )
        elif baseline_seconds is not None:
            # With no token count for it (none reported), the non-streamed reply is a moment, not a step.
            self.figure.add_vline(
                x=baseline_seconds, line_dash="dash", annotation_text="non-streamed: whole reply"
            )
        self.text_widget, self.status_widget, self.widget = _live_box(self.figure, label)
        _followed_by_a_static_copy(self.widget)

    @property
    def content_chunks(self) -> int:
        """Chunks drawn so far that carried a piece of the chart's part (content, by default)."""
        return len(self._xs)

    @property
    def first_at(self) -> float | None:
        """When the first piece arrived (seconds since the request), None before it."""
        return self._xs[0] if self._xs else None

    @property
    def text(self) -> str:
        """The streamed text drawn so far."""
        return "".join(self._pieces)

    def draw(self, new: Timeline) -> None:
        """Add the chunks of ``new`` (those that arrived since the last call) and redraw, in one message."""
        if not new.chunks:
            return
        first_draw_with_content = not self._xs
        piece_of = self.part.piece
        for offset, piece in zip(new.offsets, map(piece_of, new.chunks), strict=True):
            if piece:
                self._pieces.append(piece)
                self._xs.append(offset)
                self._ys.append(len(self._xs))
        self.chunks += len(new.chunks)
        with self.figure.batch_update():
            streamed = self.figure.data[0]
            streamed.x = self._xs
            streamed.y = self._ys
            if first_draw_with_content and self._xs:
                self._mark_first_token(self._xs[0])
        self.text_widget.value = f'<pre style="{_TEXT_STYLE}">{html.escape(self.text)}</pre>'
        self.updates += 1

    def static_png(self, caption: str = "") -> bytes:
        """The chart as drawn so far, as a PNG image (matplotlib), ``caption`` written under it."""
        from .static import timeline_png

        return timeline_png(
            title=self.title,
            offsets=self._xs,
            counts=self._ys,
            baseline_seconds=self.baseline_seconds,
            baseline_tokens=self.baseline_tokens,
            caption=caption,
            unit=self.part.unit,
            axis=self.part.axis,
            first=self.part.first,
        )

    def show_status(self, line: str) -> None:
        self.status_widget.value = html.escape(line)

    def _mark_first_token(self, offset: float) -> None:
        shape, note = self.figure.layout.shapes[0], self.figure.layout.annotations[0]
        shape.x0 = shape.x1 = note.x = offset
        note.text = f"{self.part.first} {offset:.2f} s"
        shape.visible = note.visible = True


class LiveChart(_ChartBase):
    """A live chart of one streamed request, with its text growing beside it.

    ``baseline_seconds`` and ``baseline_tokens`` describe a non-streamed call of the same request
    (its elapsed seconds and its ``usage.completion_tokens``), drawn as a step; with only the seconds,
    as a line at that moment; without them no baseline is drawn.
    ``label`` says where the stream comes from (a recording's label, or the backend's).
    ``part`` is what the curve counts and the text box shows: the content (:data:`CONTENT`), or the
    tool-call argument fragments (:data:`TOOL_ARGUMENTS`).
    ``max_updates_per_s``: every redraw makes the browser re-render the whole plot; at 20 a second
    a headless Chromium on a busy 2-core machine fell seconds behind the stream, 10 look smooth.
    """

    def __init__(
        self,
        title: str = "Streamed reply",
        *,
        baseline_seconds: float | None = None,
        baseline_tokens: int | None = None,
        label: str = "",
        part: StreamPart = CONTENT,
        max_updates_per_s: float = 10.0,
    ) -> None:
        self.title = title
        self.label = label
        self.baseline_seconds = baseline_seconds
        self.min_update_interval = 1.0 / max_updates_per_s
        self.result: AssembleResult | None = None  # the assembled reply, once the stream is over
        self.view = TimelineView(
            title, baseline_seconds=baseline_seconds, baseline_tokens=baseline_tokens, label=label, part=part
        )
        self.figure, self.widget = self.view.figure, self.view.widget
        self.text_widget, self.status_widget = self.view.text_widget, self.view.status_widget
        self._reader: StreamReader | None = None
        self._interrupted = False
        self._finished = False
        self._not_assembled: str | None = None  # why the chunks could not be assembled
        self._metrics: LatencyMetrics | None = None  # the stream's, computed once it is over
        self.lag: StreamLag | None = None  # how far the stream strayed from its schedule, once it is over

    # --- display -----------------------------------------------------------

    # --- results -----------------------------------------------------------

    @property
    def timeline(self) -> Timeline | None:
        """When each chunk arrived (so far), or None before :meth:`run`."""
        return self._reader.timeline if self._reader is not None else None

    @property
    def text(self) -> str:
        """The streamed text drawn so far."""
        return self.view.text

    @property
    def updates(self) -> int:
        """Redraws done, each one ``batch_update``."""
        return self.view.updates

    @property
    def complete(self) -> bool:
        """True once the stream has arrived in full: no error, not interrupted, assembled complete."""
        return self._finished and self._incomplete_reason() is None

    def _incomplete_reason(self) -> str | None:
        error = self._reader.error if self._reader is not None else None
        if error is not None:
            message = " ".join(str(error).split())
            return f"{type(error).__name__}: {message}" if message else type(error).__name__
        if self._interrupted:
            return "interrupted"
        if self._not_assembled is not None:
            return f"not assembled ({self._not_assembled})"
        if self.result is not None and not self.result.complete:
            return self.result.reason
        return None

    def summary(self) -> str:
        """The chart's final state in one line of text, to print below it."""
        if self._reader is None:
            return f"{self.title}: not run yet"
        if not self._finished:
            return f"{self.title}: still streaming"
        view, part = self.view, self.view.part
        metrics = self._metrics or self._reader.timeline.metrics()
        parts = [f"{view.chunks} chunks ({view.content_chunks} with {part.noun})"]
        if metrics.e2el is not None:
            parts[0] += f" in {metrics.e2el:.2f} s"
        if view.first_at is None:
            parts.append(f"no {part.noun} received")
        else:
            first = f"{part.first} at {view.first_at:.2f} s (streamed)"
            if self.baseline_seconds is not None:
                first += f" vs whole reply at {self.baseline_seconds:.2f} s (non-streamed)"
            parts.append(first)
        reason = self._incomplete_reason()
        if reason is not None:
            parts.append(f"INCOMPLETE: {reason}")
        if self.lag is not None:
            parts.append(self.lag.describe())
        text = "; ".join(parts)
        return f"{text} [{self.label}]" if self.label else text

    # --- running -----------------------------------------------------------

    def run(self, factory: Callable[[], Any]) -> Timeline:
        """Create the stream with ``factory`` in a reader thread and chart it until it ends.

        The clock starts in the reader right before ``factory()`` is called, so the time to the
        first chunk includes sending the request. An error in the stream (broken connection, API
        error) is re-raised here once the chart shows everything that arrived before it.
        """
        reader = self._begin().start(factory)
        try:
            while not reader.wait(self.min_update_interval):
                reader.wait_for_a_lull(LULL_S, self.min_update_interval)
                self.update()
        except KeyboardInterrupt:
            # The reader closes the stream at its next chunk; the chart keeps what arrived.
            reader.stop()
            self._interrupted = True
            self._finish()
            raise
        reader.join()
        return self._end()

    async def run_async(self, factory: Callable[[], Any]) -> Timeline:
        """Like :meth:`run`, for an async stream (``AsyncOpenAI``), read by a task on this loop.

        The reader and the redraws share the event loop, so a chunk that arrives during a redraw
        is timestamped after it; redraws are short and at most ``max_updates_per_s`` a second.
        """
        reading = asyncio.ensure_future(self._begin().read_async(factory))
        try:
            while not reading.done():
                await asyncio.wait({reading}, timeout=self.min_update_interval)
                self.update()
        except (KeyboardInterrupt, asyncio.CancelledError):
            reading.cancel()
            self._interrupted = True
            self._finish()
            raise
        return self._end()

    def update(self) -> None:
        """Draw the chunks that arrived since the last update (``run`` calls this while it waits)."""
        if self._reader is not None:
            self.view.draw(self._reader.since(self.view.chunks))

    def _begin(self) -> StreamReader:
        if self._reader is not None:
            raise RuntimeError("a LiveChart charts one stream; create a new LiveChart for another")
        self._reader = StreamReader()
        return self._reader

    def _end(self) -> Timeline:
        self._finish()
        assert self._reader is not None
        if self._reader.error is not None:
            raise self._reader.error
        return self._reader.timeline

    def _finish(self) -> None:
        self.update()
        assert self._reader is not None
        self.result, self._not_assembled = self._reader.assembled()
        self._metrics = self._reader.timeline.metrics()
        self.lag = reader_lag(self._reader)
        self._finished = True
        self._show_final_state(self.summary())

    def static_png(self) -> bytes:
        """The chart as drawn so far, as a PNG image, its summary written under it."""
        return self.view.static_png(caption=self.summary())
