"""The charts of :mod:`streamscope.charts` drawn once more as PNG images, for readers without a kernel.

A live chart is a widget: GitHub, nbviewer and a saved notebook opened without its kernel show it
blank. A static image of the chart's final state, saved in the notebook beside the widget, shows
there. It is drawn here with matplotlib's Agg renderer, in this process, from the same data the
widget draws: plotly's own image export (kaleido 1.x) drives a Chrome browser, which Binder and CI
do not have.

Colours follow plotly's default palette, so that the image looks like the chart it stands for.
"""

from __future__ import annotations

import base64
import io
import itertools
import math
import struct
import textwrap
from collections.abc import Mapping, Sequence

from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = [
    "histogram_png",
    "image_bundle",
    "png_size",
    "race_png",
    "timeline_png",
]

__all__ = ["histogram_png", "image_bundle", "png_size", "race_png", "timeline_png"]

_STREAMED, _BASELINE, _MARKER = "#636efa", "#ef553b", "#444444"  # plotly's first two colours, its text grey
_PALETTE = ("#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3")  # plotly's default order
_DPI = 100
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def timeline_png(
    *,
    title: str,
    offsets: Sequence[float],
    counts: Sequence[int],
    baseline_seconds: float | None = None,
    baseline_tokens: int | None = None,
    caption: str = "",
    unit: str = "content chunks",
    axis: str = "content chunks / tokens received",
    size_px: tuple[int, int] = (600, 380),
) -> bytes:
    """The live chart's picture: chunks with a piece (``unit``) received (``counts``) at each arrival
    ``offsets``; ``axis`` is the y axis's title.

    The baseline is the non-streamed reply: a step at ``baseline_seconds`` up to ``baseline_tokens``,
    or, without a token count, a line at that moment. The first token is marked where the first
    count is. ``caption`` (the chart's summary) is written under the chart.
    """
    figure, axes = _figure(size_px, caption)
    if offsets:
        axes.step(offsets, counts, where="post", color=_STREAMED, label=f"streamed: {unit}")
        axes.axvline(offsets[0], color=_MARKER, linestyle=":", linewidth=1)
        axes.annotate(
            f"first token {offsets[0]:.2f} s",
            xy=(offsets[0], 1),
            xycoords=("data", "axes fraction"),
            xytext=(3, -12),
            textcoords="offset points",
            fontsize=8,
            color=_MARKER,
        )
    if baseline_seconds is not None and baseline_tokens is not None:
        axes.step(
            [0.0, baseline_seconds],
            [0, baseline_tokens],
            where="post",
            color=_BASELINE,
            linestyle="--",
            label="non-streamed: completion tokens",
        )
    elif baseline_seconds is not None:
        axes.axvline(baseline_seconds, color=_BASELINE, linestyle="--", label="non-streamed: whole reply")
    axes.set_xlim(left=0)
    axes.set_ylim(bottom=0)
    axes.set_xlabel("seconds since the request was sent")
    axes.set_ylabel(axis)
    axes.set_title(title)
    if axes.get_legend_handles_labels()[0]:
        # Below the chart, as plotly places it, clear of the first-token note at the top.
        axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=2, fontsize=8, frameon=False)
    return _png(figure)


def race_png(
    *,
    title: str,
    lines: Mapping[str, Sequence[float]],
    marks: Sequence[tuple[float, str]] = (),
    caption: str = "",
    size_px: tuple[int, int] = (600, 380),
) -> bytes:
    """The race chart's picture: per stream, content chunks received at each of its arrival offsets
    (``lines``, on the race's clock); ``marks`` are labelled dashed moments (as :meth:`RaceView.mark`)."""
    figure, axes = _figure(size_px, caption)
    for (name, offsets), colour in zip(lines.items(), itertools.cycle(_PALETTE), strict=False):
        if offsets:
            axes.step(offsets, range(1, len(offsets) + 1), where="post", color=colour, label=name)
    for seconds, text in marks:
        axes.axvline(seconds, color=_MARKER, linestyle="--", linewidth=1)
        axes.annotate(
            text,
            xy=(seconds, 1),
            xycoords=("data", "axes fraction"),
            xytext=(3, -12),
            textcoords="offset points",
            fontsize=8,
            color=_MARKER,
        )
    axes.set_xlim(left=0)
    axes.set_ylim(bottom=0)
    axes.set_xlabel("seconds since the first request was sent")
    axes.set_ylabel("content chunks received")
    axes.set_title(title)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=3, fontsize=8, frameon=False)
    return _png(figure)


def histogram_png(
    values_ms: Sequence[float], *, title: str, caption: str = "", size_px: tuple[int, int] = (600, 320)
) -> bytes:
    """A histogram of gaps in milliseconds, 1 ms bins, counts on a log scale (as :func:`itl_histogram`)."""
    figure, axes = _figure(size_px, caption)
    if values_ms:
        low, high = math.floor(min(values_ms)), math.floor(max(values_ms)) + 1
        # An edge as wide as a pixel: a 1 ms bar on a range of hundreds of ms is narrower than one.
        bins = list(range(low, high + 1))
        axes.hist(values_ms, bins=bins, color=_STREAMED, edgecolor=_STREAMED, linewidth=1, log=True)
    axes.set_xlabel("gap before the chunk (ms)")
    axes.set_ylabel("chunks")
    axes.set_title(title)
    return _png(figure)


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) in pixels, read from a PNG's header."""
    if png[:8] != _PNG_SIGNATURE or png[12:16] != b"IHDR":
        raise ValueError("not a PNG image")
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def image_bundle(png: bytes, description: str) -> dict[str, str]:
    """A display bundle of the image, whose text says what it shows and its size, read from the PNG.

    The text is what nbval compares (it skips ``image/png`` itself), so a saved notebook's image
    cannot go missing unnoticed.
    """
    width, height = png_size(png)
    return {
        "image/png": base64.b64encode(png).decode("ascii"),
        "text/plain": f"{description} [static PNG image, {width}x{height} px]",
    }


def _figure(size_px: tuple[int, int], caption: str) -> tuple[Figure, Axes]:
    width, height = size_px
    figure = Figure(figsize=(width / _DPI, height / _DPI), dpi=_DPI, layout="constrained")
    if caption:
        figure.supxlabel("\n".join(textwrap.wrap(caption, 100)), fontsize=7, color=_MARKER)
    axes = figure.add_subplot()
    axes.spines[["top", "right"]].set_visible(False)
    axes.grid(True, color="#e5ecf6")
    axes.set_axisbelow(True)
    return figure, axes


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI)
    return buffer.getvalue()
