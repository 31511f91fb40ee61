"""Charts of a stream in Jupyter: the live chart while it arrives, and charts of what was measured.

A :class:`LiveChart` shows, while the chunks arrive, the cumulative number of content chunks
(chunks with non-empty text; or, with ``part=TOOL_ARGUMENTS``, the chunks carrying a fragment of a
tool call's arguments) against the seconds since the request was sent, the non-streamed
reply as one step at its total time, the time to first token, and the streamed text growing
beside the chart. After the stream, :meth:`LiveChart.summary` says the same in one line, for
readers of a saved notebook (GitHub shows plotly figures blank)::

    preload()  # in the notebook's first cell: the page loads the chart's JavaScript early
    ...
    chart = LiveChart(title="Count to 100", baseline_seconds=3.03, baseline_tokens=301, label=...)
    chart.display()
    timeline = chart.run(lambda: client.chat.completions.create(..., stream=True))
    print(chart.summary())

Measuring and drawing are split so that drawing does not distort what is measured: a
:class:`~streamscope.timing.StreamReader` reads and timestamps the stream (a thread for a sync
stream, a task for an async one); the chart, in the calling thread (the notebook cell), only draws
the chunks that arrived since its last redraw, at most ``max_updates_per_s`` times a second, each
redraw one ``fig.batch_update()`` message. The reply is assembled once, when the stream is over.

:func:`itl_histogram` draws what the measurement found, after the stream. The charts are plotly
``FigureWidget`` s, so that a saved notebook's outputs hold widget references rather than figures
whose numbers change from run to run. Live updates go through widget state only, so they never
pile up as cell outputs (nbval).

Where widgets cannot show (GitHub, nbviewer, a saved notebook opened without its kernel), a chart
would be blank: so a displayed chart, once drawn in full, is followed by a static PNG image of
itself (:mod:`streamscope.static_charts`). Where the widget does show, a style the widget itself
carries hides that copy, so that JupyterLab shows the chart once.
"""

from __future__ import annotations

import asyncio
import html
import time
from collections.abc import Callable, Mapping, Sequence
from copy import deepcopy
from dataclasses import dataclass
from typing import Any

import ipywidgets
import plotly.graph_objects as go

from .assemble import Assembler, AssembleResult, StreamFormatError
from .chunks import text_and_output, tool_arguments
from .timing import StreamReader, Timeline

# A redraw waits for a quiet spell this long in the stream (see StreamReader.wait_for_a_lull).
LULL_S = 0.002

CSS_CONTAINER = "streamscope-live"
CSS_CHART = "streamscope-live-chart"
CSS_TEXT = "streamscope-live-text"
# The class of a widget followed, in its cell's output, by a static copy of itself.
CSS_STATIC_COPY_FOLLOWS = "streamscope-static-copy-follows"
# Rendered by the widget, so present only where the widget renders (JupyterLab's output classes;
# an image/png output is a .jp-RenderedImage). Nowhere else is the copy hidden.
_HIDE_STATIC_COPY = (
    f"<style>.jp-OutputArea-child:has(.{CSS_STATIC_COPY_FOLLOWS}) ~ "
    ".jp-OutputArea-child:has(.jp-RenderedImage) { display: none; }</style>"
)
CSS_RACE_CHART = "streamscope-race-chart"  # a live chart with one line per stream (the browser test's hook)

# A fixed chart size: plotly cannot size itself to a flex box's share of the row.
_CHART_WIDTH_PX, _CHART_HEIGHT_PX = 600, 380
# Wrap between words (JupyterLab breaks a widget's words anywhere, splitting numbers), and inside a
# word only when it is longer than the line ("4,5,6,..." has no space to wrap at).
_TEXT_STYLE = "white-space: pre-wrap; overflow-wrap: anywhere; word-break: normal; margin: 0"


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


def _followed_by_a_static_copy(widget: ipywidgets.Box) -> None:
    """Mark ``widget`` and give it the style that hides the static copy shown after it."""
    widget.add_class(CSS_STATIC_COPY_FOLLOWS)
    widget.children = (
        *widget.children,
        ipywidgets.HTML(_HIDE_STATIC_COPY, layout=ipywidgets.Layout(display="none")),
    )


def _display_static_copy(png: bytes, description: str) -> None:
    from IPython.display import display

    from .static_charts import image_bundle  # matplotlib loads when the first image is drawn

    display(image_bundle(png, description), raw=True)


def _new_figure(title: str, xaxis_title: str, trace_names: Sequence[str]) -> go.FigureWidget:
    """A live chart's figure (a preloaded one if there is one): one empty step line per name."""
    figure = _SPARE_FIGURES.pop() if _SPARE_FIGURES else go.FigureWidget()
    for name in trace_names:
        # Lines only: markers would add an SVG node per chunk to every redraw.
        figure.add_scatter(x=[], y=[], name=name, mode="lines", line_shape="hv")
    figure.update_layout(
        title_text=title,
        xaxis_title=xaxis_title,
        yaxis_title="content chunks received",
        xaxis_rangemode="tozero",
        yaxis_rangemode="tozero",
        legend={"orientation": "h", "yanchor": "top", "y": -0.2},
        margin={"l": 60, "r": 20, "t": 50, "b": 40},
        width=_CHART_WIDTH_PX,
        height=_CHART_HEIGHT_PX,
    )
    figure.add_class(CSS_CHART)
    return figure


def _live_box(
    figure: go.FigureWidget, label: str
) -> tuple[ipywidgets.HTML, ipywidgets.HTML, ipywidgets.VBox]:
    """The text beside a live chart, the status line below it, and the whole (found by class in the page)."""
    text_widget = ipywidgets.HTML(
        layout=ipywidgets.Layout(
            flex="1 1 240px", max_height=f"{_CHART_HEIGHT_PX}px", overflow="auto", padding="8px"
        )
    )
    text_widget.add_class(CSS_TEXT)
    status_widget = ipywidgets.HTML(value=html.escape(label))
    row = ipywidgets.HBox([figure, text_widget], layout=ipywidgets.Layout(flex_flow="row wrap"))
    widget = ipywidgets.VBox([row, status_widget])
    widget.add_class(CSS_CONTAINER)
    return text_widget, status_widget, widget


def _sync_state(figure: go.FigureWidget) -> None:
    """A FigureWidget keeps the state it had when it was built; a view opened later (a page reload,
    a saved notebook's widget state) would show that: bring it up to date with the messages sent."""
    figure._widget_data = deepcopy(figure._data)
    figure._widget_layout = deepcopy(figure._layout)


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
        from .static_charts import timeline_png

        return timeline_png(
            title=self.title,
            offsets=self._xs,
            counts=self._ys,
            baseline_seconds=self.baseline_seconds,
            baseline_tokens=self.baseline_tokens,
            caption=caption,
            unit=self.part.unit,
            axis=self.part.axis,
        )

    def show_status(self, line: str) -> None:
        self.status_widget.value = html.escape(line)

    def sync_figure_state(self) -> None:
        """Bring the figure's saved state up to date with the messages it sent (see :func:`_sync_state`)."""
        _sync_state(self.figure)

    def _mark_first_token(self, offset: float) -> None:
        shape, note = self.figure.layout.shapes[0], self.figure.layout.annotations[0]
        shape.x0 = shape.x1 = note.x = offset
        note.text = f"{self.part.first} {offset:.2f} s"
        shape.visible = note.visible = True


class LiveChart:
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
        self._shown = False  # displayed in a notebook: a static copy follows when the stream ends

    # --- display -----------------------------------------------------------

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        self.view.sync_figure_state()
        self._shown = True
        bundle = self.widget._repr_mimebundle_(**kwargs)
        # The container's own text/plain embeds the figure's repr, random trace uids included:
        # a fixed text keeps the saved output identical from run to run.
        bundle["text/plain"] = f"LiveChart({self.title!r})"
        return bundle

    def display(self) -> None:
        """Show the chart in the notebook (the same as ending a cell with it)."""
        from IPython.display import display

        display(self)

    # --- results -----------------------------------------------------------

    @property
    def timeline(self) -> Timeline | None:
        """When each chunk arrived (so far), or None before :meth:`run`."""
        return self._reader.timer.timeline if self._reader is not None else None

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
        metrics = self._reader.timer.timeline.metrics()
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
        return self._reader.timer.timeline

    def _finish(self) -> None:
        self.update()
        self._assemble()
        self._finished = True
        self.view.show_status(self.summary())
        self.view.sync_figure_state()
        if self._shown:
            _display_static_copy(self.static_png(), f"{self.title}: the chart's final state")

    def static_png(self) -> bytes:
        """The chart as drawn so far, as a PNG image, its summary written under it."""
        return self.view.static_png(caption=self.summary())

    def _assemble(self) -> None:
        assembler = Assembler()
        try:
            for chunk in self._reader.timer.since(0).chunks:
                assembler.feed(chunk)
        except StreamFormatError as exc:  # charted anyway; the summary says it was not assembled
            self._not_assembled = str(exc)
        self.result = assembler.result()


class MeasuredChart:
    """A chart of what was measured, drawn once: shown as its widget, then as a static image of it.

    ``figure`` is the plotly ``FigureWidget``; ``png`` the same chart drawn by matplotlib.
    """

    def __init__(self, figure: go.FigureWidget, png: bytes, description: str) -> None:
        self.figure, self.png, self.description = figure, png, description
        self.widget = ipywidgets.VBox([figure])
        _followed_by_a_static_copy(self.widget)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        bundle = self.widget._repr_mimebundle_()
        bundle["text/plain"] = f"{type(self).__name__}({self.description!r})"  # no random trace uids
        display(bundle, raw=True)
        _display_static_copy(self.png, self.description)


class RaceView:
    """The widgets of a race: several streams on one chart, one line each, their texts beside it.

    Time runs from the start of the race (the first request), so a stream that starts later is
    drawn later. :meth:`draw` adds one stream's new chunks, shifted by when its request was sent;
    :meth:`flush` sends what was added, one message for the figure and one for the text.
    """

    def __init__(self, title: str, names: Sequence[str], *, label: str = "") -> None:
        if len(set(names)) != len(names) or not names:
            raise ValueError(f"a race needs one or more streams with distinct names, got {list(names)!r}")
        self.names = list(names)
        self.chunks = dict.fromkeys(self.names, 0)  # chunks drawn so far, per stream
        self.updates = 0
        self._xs: dict[str, list[float]] = {name: [] for name in self.names}
        self._pieces: dict[str, list[str]] = {name: [] for name in self.names}
        self._changed: set[str] = set()
        self.title = title
        self._marks: list[tuple[float, str]] = []
        self.figure = _new_figure(title, "seconds since the first request was sent", self.names)
        self.figure.add_class(CSS_RACE_CHART)
        self.text_widget, self.status_widget, self.widget = _live_box(self.figure, label)
        _followed_by_a_static_copy(self.widget)

    def content_chunks(self, name: str) -> int:
        return len(self._xs[name])

    def text(self, name: str) -> str:
        return "".join(self._pieces[name])

    def draw(self, name: str, new: Timeline, shift: float) -> None:
        """Add the chunks of stream ``name`` that arrived since its last draw (offsets + ``shift``)."""
        for offset, piece in zip(new.offsets, new.texts, strict=True):
            if piece:
                self._pieces[name].append(piece)
                self._xs[name].append(shift + offset)
        if new.chunks:
            self.chunks[name] += len(new.chunks)
            self._changed.add(name)

    def mark(self, seconds: float, text: str) -> None:
        """A dashed vertical line at ``seconds``, labelled (e.g. when the same requests, run one
        after another, were all done)."""
        self._marks.append((seconds, text))
        self.figure.add_vline(
            x=seconds, line_dash="dash", annotation_text=text, annotation_position="top left"
        )

    def flush(self) -> None:
        if not self._changed:
            return
        with self.figure.batch_update():
            for index, name in enumerate(self.names):
                if name in self._changed:
                    trace = self.figure.data[index]
                    trace.x = self._xs[name]
                    trace.y = list(range(1, len(self._xs[name]) + 1))
        self._changed.clear()
        texts = "\n".join(
            f"<b>{html.escape(name)}</b>\n{html.escape(self.text(name))}\n" for name in self.names
        )
        self.text_widget.value = f'<pre style="{_TEXT_STYLE}">{texts}</pre>'
        self.updates += 1

    def show_status(self, line: str) -> None:
        self.status_widget.value = html.escape(line).replace("\n", "<br>")

    def static_png(self, caption: str = "") -> bytes:
        """The race as drawn so far, as a PNG image (matplotlib), ``caption`` written under it."""
        from .static_charts import race_png

        return race_png(title=self.title, lines=self._xs, marks=self._marks, caption=caption)


class RaceChart:
    """A live chart of several streams, one line per stream, on one time axis: a race.

    ``await chart.run({name: factory, ...})`` reads every stream at once, each with an async
    :class:`~streamscope.timing.StreamReader` in a task of this event loop (``AsyncOpenAI``);
    ``one_after_another=True`` reads them in turn, each request sent when the one before it has
    ended. The chart redraws at most ``max_updates_per_s`` times a second, in the same loop, so
    a chunk that arrives during a redraw is timestamped after it (redraws are short).

    Each stream's own metrics (TTFT, its end) count from its own request; the chart and
    :attr:`starts` place it on the race's clock. :meth:`summary` says it all in text.
    ``mark_seconds`` draws a dashed line there, labelled ``mark_label``.
    """

    def __init__(
        self,
        title: str,
        names: Sequence[str],
        *,
        label: str = "",
        mark_seconds: float | None = None,
        mark_label: str = "",
        max_updates_per_s: float = 10.0,
    ) -> None:
        self.title = title
        self.label = label
        self.min_update_interval = 1.0 / max_updates_per_s
        self.view = RaceView(title, names, label=label)
        if mark_seconds is not None:
            self.view.mark(mark_seconds, mark_label)
        self.figure, self.widget = self.view.figure, self.view.widget
        self.readers: dict[str, StreamReader] = {}
        self.wall_seconds: float | None = None  # from the first request to the end of the last stream
        self._start: float | None = None
        self._interrupted = False
        self._shown = False

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        _sync_state(self.figure)
        self._shown = True
        bundle = self.widget._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = f"RaceChart({self.title!r})"  # the widget's own holds random trace uids
        return bundle

    def display(self) -> None:
        from IPython.display import display

        display(self)

    @property
    def starts(self) -> dict[str, float]:
        """When each stream's request was sent, in seconds since the race started."""
        return {
            name: reader.timer.started_at - self._start
            for name, reader in self.readers.items()
            if reader.timer.started_at is not None and self._start is not None
        }

    @property
    def timelines(self) -> dict[str, Timeline]:
        return {name: reader.timer.timeline for name, reader in self.readers.items()}

    async def run(
        self, factories: Mapping[str, Callable[[], Any]], *, one_after_another: bool = False
    ) -> dict[str, Timeline]:
        """Read the streams ``factories`` create (each: a stream, or a coroutine that makes one).

        An error in a stream leaves the others running; once all have ended, the first error is
        re-raised (every stream's chunks stay in :attr:`timelines`).
        """
        if self.readers:
            raise RuntimeError("a RaceChart charts one race; create a new RaceChart for another")
        if list(factories) != self.view.names:
            raise ValueError(f"run() needs one factory per stream, in order: {self.view.names}")
        self.readers = {name: StreamReader() for name in factories}
        self._start = time.perf_counter()
        pairs = [(self.readers[name], factory) for name, factory in factories.items()]
        if one_after_another:
            tasks = [asyncio.ensure_future(_in_turn(pairs))]
        else:
            tasks = [asyncio.ensure_future(reader.read_async(factory)) for reader, factory in pairs]
        try:
            while not all(task.done() for task in tasks):
                await asyncio.wait(tasks, timeout=self.min_update_interval)
                self.update()
        except (KeyboardInterrupt, asyncio.CancelledError):
            for task in tasks:
                task.cancel()
            self._interrupted = True
            self._finish()
            raise
        self.wall_seconds = time.perf_counter() - self._start
        self._finish()
        for reader in self.readers.values():
            if reader.error is not None:
                raise reader.error
        return self.timelines

    def update(self) -> None:
        """Draw the chunks that arrived since the last update, of every stream."""
        starts = self.starts
        for name, reader in self.readers.items():
            if name in starts:
                self.view.draw(name, reader.since(self.view.chunks[name]), starts[name])
        self.view.flush()

    def _finish(self) -> None:
        self.update()
        self.view.show_status(self.summary())
        _sync_state(self.figure)
        if self._shown:
            png = self.view.static_png(caption=self.summary())
            _display_static_copy(png, f"{self.title}: the chart's final state")

    def summary(self) -> str:
        """One line per stream (chunks, first token, end, when it started), then the race's wall time."""
        if not self.readers:
            return f"{self.title}: not run yet"
        starts = self.starts
        lines = []
        for name, reader in self.readers.items():
            timeline = reader.timer.timeline
            m = timeline.metrics()
            parts = [f"{name}: {len(timeline.chunks)} chunks ({self.view.content_chunks(name)} with content)"]
            if name in starts:
                parts.append(f"sent at {starts[name]:.2f} s")
            parts.append("no content" if m.ttft is None else f"first token after {m.ttft:.2f} s")
            if timeline.end is not None:
                parts.append(f"ended after {timeline.end:.2f} s")
            elif reader.error is not None:
                parts.append(f"INCOMPLETE: {type(reader.error).__name__}: {reader.error}")
            else:
                parts.append("INCOMPLETE: interrupted" if self._interrupted else "still streaming")
            lines.append(", ".join(parts))
        if self.wall_seconds is not None:
            lines.append(f"all done {self.wall_seconds:.2f} s after the first request")
        text = "\n".join(lines)
        return f"{text}\n[{self.label}]" if self.label else text


async def _in_turn(pairs: Sequence[tuple[StreamReader, Callable[[], Any]]]) -> None:
    for reader, factory in pairs:
        await reader.read_async(factory)


def itl_histogram(itl: Sequence[float], *, title: str = "Gaps between chunks") -> MeasuredChart:
    """A histogram of inter-token (inter-chunk) latencies, in milliseconds, 1 ms bins."""
    from .static_charts import histogram_png

    gaps_ms = [gap * 1000 for gap in itl]
    figure = go.FigureWidget(
        data=[go.Histogram(x=gaps_ms, xbins={"size": 1}, name="gaps")],
        layout=go.Layout(
            title_text=title,
            xaxis_title="gap before the chunk (ms)",
            yaxis_title="chunks",
            yaxis_type="log",
            height=320,
            margin={"l": 60, "r": 20, "t": 50, "b": 40},
        ),
    )
    description = f"{title}: histogram of {len(itl)} gaps"
    return MeasuredChart(figure, histogram_png(gaps_ms, title=title), description)


def event_order_chart(series: Mapping[str, Sequence[int]], *, title: str, unit: str) -> MeasuredChart:
    """Running totals (``unit``, e.g. characters of reasoning and of answer) against the event's
    number: for a stream recorded without times, its order is all there is to draw."""
    from .static_charts import order_png

    figure = go.FigureWidget(
        data=[
            go.Scatter(
                x=list(range(1, len(totals) + 1)), y=list(totals), name=name, mode="lines", line_shape="hv"
            )
            for name, totals in series.items()
        ],
        layout=go.Layout(
            title_text=title,
            xaxis_title="event number (order of arrival; no times were recorded)",
            yaxis_title=unit,
            xaxis_rangemode="tozero",
            yaxis_rangemode="tozero",
            height=360,
            legend={"orientation": "h", "yanchor": "top", "y": -0.2},
            margin={"l": 60, "r": 20, "t": 50, "b": 40},
        ),
    )
    events = max((len(totals) for totals in series.values()), default=0)
    description = f"{title}: {unit} against event number, {events} events, {', '.join(series)}"
    return MeasuredChart(figure, order_png(series, title=title, unit=unit), description)


def field_times_chart(
    marks: Mapping[str, Mapping[str, float]],
    *,
    title: str,
    end_seconds: float | None = None,
    end_label: str = "",
) -> MeasuredChart:
    """When each field of a streamed JSON document became readable: ``marks`` maps a kind of moment
    ("first readable", "complete") to {field: seconds}; a row per field, time on x."""
    from .static_charts import field_times_png

    fields = list(dict.fromkeys(name for times in marks.values() for name in times))
    figure = go.FigureWidget(
        data=[
            go.Scatter(x=list(times.values()), y=list(times), name=kind, mode="markers", marker={"size": 10})
            for kind, times in marks.items()
        ],
        layout=go.Layout(
            title_text=title,
            xaxis_title="seconds since the request was sent",
            xaxis_rangemode="tozero",
            yaxis={"categoryorder": "array", "categoryarray": fields[::-1]},
            height=360,
            legend={"orientation": "h", "yanchor": "top", "y": -0.2},
            margin={"l": 100, "r": 20, "t": 50, "b": 40},
        ),
    )
    if end_seconds is not None:
        figure.add_vline(x=end_seconds, line_dash="dash", annotation_text=end_label)
    description = f"{title}: {len(fields)} fields, {', '.join(marks)} against time"
    png = field_times_png(marks, title=title, end_seconds=end_seconds, end_label=end_label)
    return MeasuredChart(figure, png, description)
