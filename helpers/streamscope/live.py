"""Live timing charts in Jupyter: watch a streamed reply arrive, beside the non-streamed baseline.

A :class:`LiveChart` shows, while the chunks arrive, the cumulative number of content chunks
(chunks with non-empty text) against the seconds since the request was sent, the non-streamed
reply as one step at its total time, the time to first token, and the streamed text growing
beside the chart. After the stream, :meth:`LiveChart.summary` says the same in one line, for
readers of a saved notebook (GitHub shows plotly figures blank)::

    preload()  # in the notebook's first cell: the page loads the chart's JavaScript early
    ...
    chart = LiveChart(title="Count to 100", baseline_seconds=3.03, baseline_tokens=301, label=...)
    chart.display()
    timeline = chart.run(lambda: client.chat.completions.create(..., stream=True))
    print(chart.summary())

Measuring and drawing are split so that drawing does not distort what is measured:

* the *reader* (a thread for a sync stream, a task for an async one) starts a
  :class:`~streamscope.timing.StreamTimer` right before it creates the request, then only
  iterates the stream through it (one ``perf_counter()`` and two appends per chunk);
* the *updater* (the calling thread, i.e. the notebook cell) takes what the reader recorded,
  assembles and draws it, at most ``max_updates_per_s`` times a second, each redraw one
  ``fig.batch_update()`` message.

Live updates go through widget state only, so they never pile up as cell outputs (nbval).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import inspect
import sys
import threading
import time
from collections.abc import Callable, Iterator
from copy import deepcopy
from typing import Any

import ipywidgets
import plotly.graph_objects as go

from .assemble import Assembler, AssembleResult, StreamFormatError
from .timing import StreamTimer, Timeline

# While the updater computes a redraw it holds the GIL; a reader woken by the socket then waits
# for it, and CPython only forces a hand-over after the switch interval (5 ms by default). run()
# lowers the interval while the stream lasts, so that a chunk's timestamp waits at most about this
# long, and restores it after. Measured (benchmarks/live_chart.py) with redraws nonstop: a thread
# blocked on a socket woke 5.4 ms late (p50) at 5 ms, 0.9 ms at 0.5 ms; idle, 0.1 ms.
READER_SWITCH_INTERVAL_S = 0.0005
# A redraw waits for this long a quiet spell in the stream (see LiveChart._wait_for_a_lull).
LULL_S = 0.002

CSS_CONTAINER = "streamscope-live"
CSS_CHART = "streamscope-live-chart"
CSS_TEXT = "streamscope-live-text"

# A fixed chart size: plotly cannot size itself to a flex box's share of the row.
_CHART_WIDTH_PX, _CHART_HEIGHT_PX = 600, 380
# Wrap between words (JupyterLab breaks a widget's words anywhere, splitting numbers), and inside a
# word only when it is longer than the line ("4,5,6,..." has no space to wrap at).
_TEXT_STYLE = "white-space: pre-wrap; overflow-wrap: anywhere; word-break: normal; margin: 0"


# Figures made ahead of need by preload(), taken by the next charts.
_SPARE_FIGURES: list[go.FigureWidget] = []


def preload() -> None:
    """Send a chart's JavaScript to the page now, so that the next :class:`LiveChart` shows at once.

    Every new FigureWidget carries plotly.js (5 MB) to the page, which evaluates it before it can
    show the figure: in JupyterLab on a busy 2-core machine a new chart appeared 2-5 s after it
    was displayed (measured), longer than the seed's whole stream, whose growth was then never
    seen. Call this in a notebook's first cell: the next LiveChart takes the figure made here,
    which the page has loaded by the time the chart is displayed (about 0.3 s to appear, measured).
    """
    _SPARE_FIGURES.append(go.FigureWidget())


class LiveChart:
    """A live chart of one streamed request, with its text growing beside it.

    ``baseline_seconds`` and ``baseline_tokens`` describe a non-streamed call of the same request
    (its elapsed seconds and its ``usage.completion_tokens``), drawn as a step; with only the seconds,
    as a line at that moment; without them no baseline is drawn.
    ``label`` says where the stream comes from (a recording's label, or the backend's).
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
        max_updates_per_s: float = 10.0,
    ) -> None:
        self.title = title
        self.label = label
        self.baseline_seconds = baseline_seconds
        self.baseline_tokens = baseline_tokens
        self.min_update_interval = 1.0 / max_updates_per_s
        self.updates = 0  # redraws done, each one batch_update
        self.result: AssembleResult | None = None  # the assembled reply, once the stream is over
        self._timer: StreamTimer | None = None
        self._done = threading.Event()
        self._stop = False  # set by the updater to make the reader close the stream
        self._error: BaseException | None = None
        self._interrupted = False
        self._finished = False
        self._assembler = Assembler()
        self._not_assembled: str | None = None  # why the chunks could not be assembled
        self._seen = 0  # chunks taken from the timer so far
        self._chunks = 0
        self._xs: list[float] = []  # arrival offsets of the content chunks
        self._ys: list[int] = []  # content chunks received so far, at each of them
        self._pieces: list[str] = []

        self.figure = _SPARE_FIGURES.pop() if _SPARE_FIGURES else go.FigureWidget()
        self.figure.add_scatter(
            x=[],
            y=[],
            name="streamed: content chunks",
            mode="lines",  # markers would add an SVG node per chunk to every redraw
            line_shape="hv",
        )
        self.figure.update_layout(
            title_text=title,
            xaxis_title="seconds since the request was sent",
            yaxis_title="content chunks / tokens received",
            xaxis_rangemode="tozero",
            yaxis_rangemode="tozero",
            legend={"orientation": "h", "yanchor": "top", "y": -0.2},
            margin={"l": 60, "r": 20, "t": 50, "b": 40},
            width=_CHART_WIDTH_PX,
            height=_CHART_HEIGHT_PX,
            # The first-token marker, shown once it is known. Built now, so that the redraw
            # that shows it only sets four values (1 ms less than building it then, measured).
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
        self.figure.add_class(CSS_CHART)
        self.text_widget = ipywidgets.HTML(
            layout=ipywidgets.Layout(
                flex="1 1 240px", max_height=f"{_CHART_HEIGHT_PX}px", overflow="auto", padding="8px"
            )
        )
        self.text_widget.add_class(CSS_TEXT)
        self.status_widget = ipywidgets.HTML(value=html.escape(label))
        row = ipywidgets.HBox([self.figure, self.text_widget], layout=ipywidgets.Layout(flex_flow="row wrap"))
        self.widget = ipywidgets.VBox([row, self.status_widget])
        self.widget.add_class(CSS_CONTAINER)

    # --- display -----------------------------------------------------------

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        self._sync_figure_state()
        bundle = self.widget._repr_mimebundle_(**kwargs)
        # The container's own text/plain embeds the figure's repr, random trace uids included:
        # a fixed text keeps the saved output identical from run to run.
        bundle["text/plain"] = f"LiveChart({self.title!r})"
        return bundle

    def display(self) -> None:
        """Show the chart in the notebook (the same as ending a cell with it)."""
        from IPython.display import display

        display(self)

    def _sync_figure_state(self) -> None:
        # A FigureWidget sends its updates as messages and keeps the state it had when it was
        # built; a view opened later (a page reload, a saved notebook's widget state) would show
        # that, so bring the state up to date.
        self.figure._widget_data = deepcopy(self.figure._data)
        self.figure._widget_layout = deepcopy(self.figure._layout)

    # --- results -----------------------------------------------------------

    @property
    def timeline(self) -> Timeline | None:
        """When each chunk arrived (so far), or None before :meth:`run`."""
        return self._timer.timeline if self._timer is not None else None

    @property
    def text(self) -> str:
        """The streamed text received so far."""
        return "".join(self._pieces)

    @property
    def complete(self) -> bool:
        """True once the stream has arrived in full: no error, not interrupted, assembled complete."""
        return self._finished and self._incomplete_reason() is None

    def _incomplete_reason(self) -> str | None:
        if self._error is not None:
            message = " ".join(str(self._error).split())
            return f"{type(self._error).__name__}: {message}" if message else type(self._error).__name__
        if self._interrupted:
            return "interrupted"
        if self._not_assembled is not None:
            return f"not assembled ({self._not_assembled})"
        if self.result is not None and not self.result.complete:
            return self.result.reason
        return None

    def summary(self) -> str:
        """The chart's final state in one line of text, to print below it."""
        if self._timer is None:
            return f"{self.title}: not run yet"
        if not self._finished:
            return f"{self.title}: still streaming"
        metrics = self._timer.timeline.metrics()
        parts = [f"{self._chunks} chunks ({len(self._xs)} with content)"]
        if metrics.e2el is not None:
            parts[0] += f" in {metrics.e2el:.2f} s"
        if metrics.ttft is None:
            parts.append("no content received")
        else:
            first = f"first token at {metrics.ttft:.2f} s (streamed)"
            if self.baseline_seconds is not None:
                first += f" vs whole reply at {self.baseline_seconds:.2f} s (non-streamed)"
            parts.append(first)
        reason = self._incomplete_reason()
        if reason is not None:
            parts.append(f"INCOMPLETE: {reason}")
        text = "; ".join(parts)
        return f"{text} [{self.label}]" if self.label else text

    # --- running -----------------------------------------------------------

    def run(self, factory: Callable[[], Any]) -> Timeline:
        """Create the stream with ``factory`` in a reader thread and chart it until it ends.

        The clock starts in the reader right before ``factory()`` is called, so the time to the
        first chunk includes sending the request. An error in the stream (broken connection, API
        error) is re-raised here once the chart shows everything that arrived before it.
        """
        timer = self._begin()
        reader = threading.Thread(
            target=self._read, args=(timer, factory), name="streamscope-live-reader", daemon=True
        )
        with _switch_interval(READER_SWITCH_INTERVAL_S):
            reader.start()
            try:
                while not self._done.wait(self.min_update_interval):
                    self._wait_for_a_lull()
                    self._draw()
            except KeyboardInterrupt:
                # The reader closes the stream at its next chunk; the chart keeps what arrived.
                self._stop = self._interrupted = True
                self._finish()
                raise
        reader.join()
        return self._end()

    async def run_async(self, factory: Callable[[], Any]) -> Timeline:
        """Like :meth:`run`, for an async stream (``AsyncOpenAI``), read by a task on this loop.

        The reader and the redraws share the event loop, so a chunk that arrives during a redraw
        is timestamped after it; redraws are short and at most ``max_updates_per_s`` a second.
        """
        timer = self._begin()
        reader = asyncio.ensure_future(self._read_async(timer, factory))
        try:
            while not reader.done():
                await asyncio.wait({reader}, timeout=self.min_update_interval)
                self._draw()
        except (KeyboardInterrupt, asyncio.CancelledError):
            reader.cancel()
            self._interrupted = True
            self._finish()
            raise
        return self._end()

    def _begin(self) -> StreamTimer:
        if self._timer is not None:
            raise RuntimeError("a LiveChart charts one stream; create a new LiveChart for another")
        self._timer = StreamTimer()
        return self._timer

    def _read(self, timer: StreamTimer, factory: Callable[[], Any]) -> None:
        try:
            timer.start()
            stream = factory()
            for _ in timer.track(stream):
                if self._stop:
                    _close(stream)
                    break
        except BaseException as exc:  # re-raised by run() in the calling thread
            self._error = exc
        finally:
            self._done.set()

    async def _read_async(self, timer: StreamTimer, factory: Callable[[], Any]) -> None:
        try:
            timer.start()
            stream = factory()
            if inspect.isawaitable(stream):  # AsyncOpenAI's create() returns a coroutine
                stream = await stream
            async for _ in timer.atrack(stream):
                pass
        except Exception as exc:  # re-raised by run_async()
            self._error = exc
        finally:
            self._done.set()

    def _end(self) -> Timeline:
        self._finish()
        if self._error is not None:
            raise self._error
        return self.timeline

    def _finish(self) -> None:
        self._draw()
        self.result = self._assembler.result()
        self._finished = True
        self.status_widget.value = html.escape(self.summary())
        self._sync_figure_state()

    # --- drawing -----------------------------------------------------------

    def _wait_for_a_lull(self) -> None:
        """Wait until no chunk has arrived for LULL_S (at most one update interval).

        Chunks often come in bursts (several in one network read), which the reader parses one
        after another; a redraw in the middle would take the CPU from it and delay the rest of
        the burst's timestamps by the redraw's duration.
        """
        deadline = time.perf_counter() + self.min_update_interval
        seen = len(self._timer.timeline.offsets)
        while not self._done.wait(LULL_S) and time.perf_counter() < deadline:
            arrived = len(self._timer.timeline.offsets)
            if arrived == seen:
                return
            seen = arrived

    def _take_new(self) -> Timeline:
        """The chunks recorded since the last call, with their offsets."""
        recorded = self._timer.timeline
        # The reader may append between the copies of offsets and chunks: keep the pairs.
        n = min(len(recorded.offsets), len(recorded.chunks))
        new = Timeline(recorded.offsets[self._seen : n], recorded.chunks[self._seen : n])
        self._seen = n
        return new

    def _draw(self) -> None:
        new = self._take_new()
        if not new.chunks:
            return
        first_draw_with_content = not self._xs
        for offset, chunk, piece in zip(new.offsets, new.chunks, new.texts, strict=True):
            self._assemble(chunk)
            if piece:
                self._pieces.append(piece)
                self._xs.append(offset)
                self._ys.append(len(self._xs))
        self._chunks += len(new.chunks)
        with self.figure.batch_update():
            streamed = self.figure.data[0]
            streamed.x = self._xs
            streamed.y = self._ys
            if first_draw_with_content and self._xs:
                self._mark_first_token(self._xs[0])
        self.text_widget.value = f'<pre style="{_TEXT_STYLE}">{html.escape(self.text)}</pre>'
        self.updates += 1

    def _assemble(self, chunk: Any) -> None:
        if self._not_assembled is not None:
            return
        try:
            self._assembler.feed(chunk)
        except StreamFormatError as exc:  # chart it anyway; the summary says it was not assembled
            self._not_assembled = str(exc)

    def _mark_first_token(self, offset: float) -> None:
        shape, note = self.figure.layout.shapes[0], self.figure.layout.annotations[0]
        shape.x0 = shape.x1 = note.x = offset
        note.text = f"first token {offset:.2f} s"
        shape.visible = note.visible = True


@contextlib.contextmanager
def _switch_interval(seconds: float) -> Iterator[None]:
    previous = sys.getswitchinterval()
    sys.setswitchinterval(min(previous, seconds))
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def _close(stream: Any) -> None:
    close = getattr(stream, "close", None)  # the SDK's Stream and generators have one
    if close is not None:
        close()
