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
    "events_png",
    "field_times_png",
    "histogram_png",
    "image_bundle",
    "order_png",
    "png_size",
    "race_png",
    "timeline_png",
]

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
    first: str = "first token",
    size_px: tuple[int, int] = (600, 380),
) -> bytes:
    """The live chart's picture: chunks with a piece (``unit``) received (``counts``) at each arrival
    ``offsets``; ``axis`` is the y axis's title.

    The baseline is the non-streamed reply: a step at ``baseline_seconds`` up to ``baseline_tokens``,
    or, without a token count, a line at that moment. The first piece is marked where the first
    count is, labelled ``first`` ("first token", "first argument fragment"). ``caption`` (the
    chart's summary) is written under the chart.
    """
    figure, axes = _figure(size_px, caption)
    if offsets:
        axes.step(offsets, counts, where="post", color=_STREAMED, label=f"streamed: {unit}")
        axes.axvline(offsets[0], color=_MARKER, linestyle=":", linewidth=1)
        axes.annotate(
            f"{first} {offsets[0]:.2f} s",
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
    axes.set_ylabel("\n".join(textwrap.wrap(axis, 28)))  # a long title on two lines, not cut at the edge
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
        axes.annotate(  # left of its line, so that a mark at the race's end stays inside the image
            text,
            xy=(seconds, 1),
            xycoords=("data", "axes fraction"),
            xytext=(-3, -12),
            textcoords="offset points",
            fontsize=8,
            color=_MARKER,
            horizontalalignment="right",
        )
    axes.set_xlim(left=0)
    axes.set_ylim(bottom=0)
    axes.set_xlabel("seconds since the first request was sent")
    axes.set_ylabel("content chunks received")
    axes.set_title(title)
    if axes.get_legend_handles_labels()[0]:
        # Inside the axes, one stream a line: three long names side by side were cut at both edges.
        axes.legend(loc="upper left", fontsize=8, frameon=False)
    return _png(figure)


def histogram_png(
    values_ms: Sequence[float], *, title: str, caption: str = "", size_px: tuple[int, int] = (600, 320)
) -> bytes:
    """A histogram of gaps in milliseconds, 1 ms bins, counts on a log scale (as :func:`itl_histogram`)."""
    figure, axes = _figure(size_px, caption)
    if values_ms:
        # From 0, so that gaps of 0 ms (chunks that came together) show as a bar of their own.
        bins = list(range(0, math.floor(max(values_ms)) + 2))
        # An edge as wide as a pixel: a 1 ms bar on a range of hundreds of ms is narrower than one.
        axes.hist(values_ms, bins=bins, color=_STREAMED, edgecolor=_STREAMED, linewidth=1, log=True)
        axes.set_xlim(left=0)
    axes.set_xlabel("gap before the chunk (ms)")
    axes.set_ylabel("chunks")
    axes.set_title(title)
    return _png(figure)


def events_png(
    offsets: Sequence[float], types: Sequence[str], *, title: str, size_px: tuple[int, int] = (600, 360)
) -> bytes:
    """One dot per event at its offset, one row per type, the first type to arrive at the top (as
    :func:`event_types`)."""
    figure, axes = _figure(size_px, "")
    order = list(dict.fromkeys(types))
    row = {name: len(order) - 1 - position for position, name in enumerate(order)}
    axes.scatter(offsets, [row[name] for name in types], s=12, color=_STREAMED)
    axes.set_yticks(range(len(order)), order[::-1], fontsize=7)
    axes.set_xlim(left=0)
    axes.set_xlabel("seconds since the request was sent")
    axes.set_title(title)
    return _png(figure)


def order_png(
    series: Mapping[str, Sequence[int]],
    *,
    title: str,
    unit: str,
    caption: str = "",
    size_px: tuple[int, int] = (600, 360),
) -> bytes:
    """Running totals (``unit``) against the event's number, one step line per series (as
    :func:`streamscope.charts.event_order_chart`): a stream's order, with no clock."""
    figure, axes = _figure(size_px, caption)
    for colour, (name, totals) in zip(itertools.cycle(_PALETTE), series.items()):
        axes.step(range(1, len(totals) + 1), totals, where="post", color=colour, label=name)
    axes.set_xlabel("event number (order of arrival; no times were recorded)")
    axes.set_ylabel(unit)
    axes.set_xlim(left=0)
    axes.set_ylim(bottom=0)
    axes.set_title(title)
    axes.legend(loc="upper left", frameon=False, fontsize=8)
    return _png(figure)


def field_times_png(
    marks: Mapping[str, Mapping[str, float]],
    *,
    title: str,
    end_seconds: float | None = None,
    end_label: str = "",
    caption: str = "",
    size_px: tuple[int, int] = (600, 420),
) -> bytes:
    """When each field of a JSON document became readable: one row per field, one marker kind per
    ``marks`` key (e.g. "first readable", "complete"), seconds on x (as
    :func:`streamscope.charts.field_times_chart`); ``end_seconds`` draws a line (the document's end)."""
    figure, axes = _figure(size_px, caption)
    fields = list(dict.fromkeys(name for times in marks.values() for name in times))
    rows = {name: len(fields) - 1 - i for i, name in enumerate(fields)}
    for colour, marker, (kind, times) in zip(
        itertools.cycle(_PALETTE), itertools.cycle("o^sD"), marks.items()
    ):
        axes.scatter(
            list(times.values()), [rows[n] for n in times], color=colour, marker=marker, label=kind, zorder=3
        )
    if end_seconds is not None:
        axes.axvline(end_seconds, color=_MARKER, linestyle="--", linewidth=1, label=end_label or None)
    axes.set_yticks(list(rows.values()), list(rows))
    axes.set_xlabel("seconds since the request was sent")
    axes.set_xlim(left=0)
    axes.set_title(title)
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), frameon=False, fontsize=8)
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
        lines = [wrapped for line in caption.splitlines() for wrapped in textwrap.wrap(line, 120) or [""]]
        figure.supxlabel("\n".join(lines), fontsize=7, color=_MARKER)
    axes = figure.add_subplot()
    axes.spines[["top", "right"]].set_visible(False)
    axes.grid(True, color="#e5ecf6")
    axes.set_axisbelow(True)
    return figure, axes


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI)
    return buffer.getvalue()
