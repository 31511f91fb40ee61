"""The charts' shared base: figure, display, static copy; the only code touching plotly internals."""

from __future__ import annotations

import html
from collections.abc import Sequence
from copy import deepcopy
from typing import Any

import ipywidgets
import plotly.graph_objects as go

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

    from .static import image_bundle  # matplotlib loads when the first image is drawn

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


def _widget_bundle(widget: ipywidgets.Box, text: str, **kwargs: Any) -> dict[str, Any]:
    """The widget's display bundle, with ``text`` as its text/plain.

    The container's own text/plain embeds the figure's repr, random trace uids included: a fixed
    text keeps the saved output identical from run to run.
    """
    bundle = widget._repr_mimebundle_(**kwargs)
    bundle["text/plain"] = text
    return bundle


class _ChartBase:
    """A live chart's face in a notebook: displayed as its widget, then, once drawn in full, a static copy."""

    title: str
    figure: go.FigureWidget
    widget: ipywidgets.Box
    view: Any  # the chart's widgets: show_status(line), static_png(caption)
    _shown = False  # displayed in a notebook: a static copy follows when the stream ends

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        _sync_state(self.figure)
        self._shown = True
        return _widget_bundle(self.widget, f"{type(self).__name__}({self.title!r})", **kwargs)

    def display(self) -> None:
        """Show the chart in the notebook (the same as ending a cell with it)."""
        from IPython.display import display

        display(self)

    def _show_final_state(self, summary: str) -> None:
        """Write ``summary`` under the chart and, if it was displayed, show its image after it."""
        self.view.show_status(summary)
        _sync_state(self.figure)
        if self._shown:
            png = self.view.static_png(caption=summary)
            _display_static_copy(png, f"{self.title}: the chart's final state")
