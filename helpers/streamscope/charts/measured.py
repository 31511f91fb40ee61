"""Charts of what was measured, drawn once after the stream: the histogram of gaps between chunks, a
Responses stream's events by type, a stream's events in order (for streams recorded without times),
and when each field of a JSON answer could be read."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import ipywidgets
import plotly.graph_objects as go

from ._base import _display_static_copy, _followed_by_a_static_copy, _widget_bundle

__all__ = [
    "MeasuredChart",
    "event_order_chart",
    "event_types",
    "field_times_chart",
    "itl_histogram",
]


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

        display(_widget_bundle(self.widget, f"{type(self).__name__}({self.description!r})"), raw=True)
        _display_static_copy(self.png, self.description)


def itl_histogram(itl: Sequence[float], *, title: str = "Gaps between chunks") -> MeasuredChart:
    """A histogram of inter-token (inter-chunk) latencies, in milliseconds, 1 ms bins.

    The axis ends at three times the 95th percentile: a few long pauses on the same axis would squeeze
    the common gaps, and how they cluster (at a clock's resolution, say), into one bar. The gaps beyond
    it are not drawn; the title names them.
    """
    from .static import histogram_png

    gaps_ms = sorted(gap * 1000 for gap in itl)
    end = 3 * gaps_ms[int(len(gaps_ms) * 0.95)] if gaps_ms else 0.0
    drawn = [gap for gap in gaps_ms if gap <= end]
    longer = gaps_ms[len(drawn) :]
    # A saved notebook's text (nbval compares it) holds no count that moves with the machine's load.
    description = f"{title}: histogram of {len(itl)} gaps"
    if len(longer) > 3:
        title = f"{title} (not drawn: {len(longer)} gaps over {end:.1f} ms, the longest {longer[-1]:.1f} ms)"
    elif longer:
        title = f"{title} (not drawn: {', '.join(f'{gap:.1f}' for gap in longer)} ms)"
    figure = go.FigureWidget(
        data=[go.Histogram(x=drawn, xbins={"start": 0, "size": 1}, name="gaps")],
        layout=go.Layout(
            title_text=title,
            xaxis={"range": [0, end + 1]},
            xaxis_title="gap before the chunk (ms)",
            yaxis_title="chunks",
            yaxis_type="log",
            height=320,
            margin={"l": 60, "r": 20, "t": 50, "b": 40},
        ),
    )
    return MeasuredChart(figure, histogram_png(drawn, title=title), description)


def event_types(
    offsets: Sequence[float], types: Sequence[str], *, title: str = "Events by type"
) -> MeasuredChart:
    """One dot per event at its arrival offset (seconds), one row per event type in order of first arrival."""
    from .static import events_png

    order = list(dict.fromkeys(types))
    figure = go.FigureWidget(
        data=[go.Scatter(x=list(offsets), y=list(types), mode="markers", marker={"size": 6}, name="events")],
        layout=go.Layout(
            title_text=title,
            xaxis_title="seconds since the request was sent",
            yaxis={"categoryorder": "array", "categoryarray": order[::-1]},
            height=360,
            margin={"l": 260, "r": 20, "t": 50, "b": 40},
        ),
    )
    description = f"{title}: {len(types)} events of {len(order)} types"
    return MeasuredChart(figure, events_png(offsets, types, title=title), description)


def event_order_chart(series: Mapping[str, Sequence[int]], *, title: str, unit: str) -> MeasuredChart:
    """Running totals (``unit``, e.g. characters of reasoning and of answer) against the event's
    number: for a stream recorded without times, its order is all there is to draw."""
    from .static import order_png

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
    from .static import field_times_png

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
