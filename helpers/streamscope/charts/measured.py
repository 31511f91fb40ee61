"""Charts of what was measured, drawn once after the stream: the histogram of gaps between chunks, and
a Responses stream's events by type."""

from __future__ import annotations

from collections.abc import Sequence

import ipywidgets
import plotly.graph_objects as go

from ._base import _display_static_copy, _followed_by_a_static_copy, _widget_bundle

__all__ = [
    "MeasuredChart",
    "event_types",
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
