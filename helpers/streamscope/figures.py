"""Charts of a stream drawn after it has ended, from its measured timeline.

The live chart (``streamscope.live``) shows a stream while it arrives; these show
what the measurement found. They are plotly ``FigureWidget``s, like the live chart,
so that a saved notebook's outputs hold widget references rather than figures
whose numbers change from run to run.
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go


def itl_histogram(itl: Sequence[float], *, title: str = "Gaps between chunks") -> go.FigureWidget:
    """A histogram of inter-token (inter-chunk) latencies, in milliseconds, 1 ms bins."""
    return go.FigureWidget(
        data=[go.Histogram(x=[gap * 1000 for gap in itl], xbins={"size": 1}, name="gaps")],
        layout=go.Layout(
            title_text=title,
            xaxis_title="gap before the chunk (ms)",
            yaxis_title="chunks",
            yaxis_type="log",
            height=320,
            margin={"l": 60, "r": 20, "t": 50, "b": 40},
        ),
    )
