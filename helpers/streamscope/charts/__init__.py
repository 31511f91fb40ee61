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
:class:`~streamscope.reader.StreamReader` reads and timestamps the stream (a thread for a sync
stream, a task for an async one); the chart, in the calling thread (the notebook cell), only draws
the chunks that arrived since its last redraw, at most ``max_updates_per_s`` times a second, each
redraw one ``fig.batch_update()`` message. The reply is assembled once, when the stream is over.

:func:`itl_histogram` draws what the measurement found, after the stream; :func:`event_order_chart`
a stream recorded without times, in the order of its events; :func:`field_times_chart` when each
field of a streamed JSON answer could be read. The charts are plotly
``FigureWidget`` s, so that a saved notebook's outputs hold widget references rather than figures
whose numbers change from run to run. Live updates go through widget state only, so they never
pile up as cell outputs (nbval).

Where widgets cannot show (GitHub, nbviewer, a saved notebook opened without its kernel), a chart
would be blank: so a displayed chart, once drawn in full, is followed by a static PNG image of
itself (:mod:`streamscope.charts.static`). Where the widget does show, a style the widget itself
carries hides that copy, so that JupyterLab shows the chart once.
"""

from ._base import (
    CSS_CHART,
    CSS_CONTAINER,
    CSS_RACE_CHART,
    CSS_STATIC_COPY_FOLLOWS,
    CSS_TEXT,
    LULL_S,
    preload,
)
from .live import CONTENT, TOOL_ARGUMENTS, LiveChart, StreamPart, TimelineView
from .measured import MeasuredChart, event_order_chart, event_types, field_times_chart, itl_histogram
from .race import RaceChart, RaceView

__all__ = [
    "CONTENT",
    "CSS_CHART",
    "CSS_CONTAINER",
    "CSS_RACE_CHART",
    "CSS_STATIC_COPY_FOLLOWS",
    "CSS_TEXT",
    "LULL_S",
    "TOOL_ARGUMENTS",
    "LiveChart",
    "MeasuredChart",
    "RaceChart",
    "RaceView",
    "StreamPart",
    "TimelineView",
    "event_order_chart",
    "event_types",
    "field_times_chart",
    "itl_histogram",
    "preload",
]
