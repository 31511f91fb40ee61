"""Charts of what was measured, drawn once after the stream: the histogram of gaps between chunks."""

from __future__ import annotations

from collections.abc import Sequence

import ipywidgets
import plotly.graph_objects as go

from ._base import _display_static_copy, _followed_by_a_static_copy, _widget_bundle

__all__ = [
    "MeasuredChart",
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
    """A histogram of inter-token (inter-chunk) latencies, in milliseconds, 1 ms bins."""
    from .static import histogram_png

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
