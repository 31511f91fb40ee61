"""Per event, the time at each hop (upstream server, relay, page), what each hop adds, and their chart.

- upstream: when the replay server was due to send the event (its schedule: the recorded offset
  divided by the speed), counted from when the relay sent its request. The replay server starts its
  clock when the request's head arrives, a little later, so the relay's added delay includes that
  trip. A live or local backend says nothing of when it sent: that hop is left out, and said to be.
- relay: when the relay had written the piece that ended the event on to the page.
- page: when the page painted it (``performance.now()`` in a ``requestAnimationFrame`` after the
  text changed, mapped to the kernel's clock by the best of a few clock round trips), or, where no
  page reported (nbval, no browser), when a client in the kernel read it.

First token is the first event that carries text (``delta.content``, llmperf's definition).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from ..backends.provenance import sent_log_line
from ..backends.registry import shared_replay_server
from ..backends.switch import active_backend, resolve
from .app import _delta_text
from .log import KERNEL_CLIENT, RelayedRequest


@dataclass(frozen=True)
class Hops:
    """A relayed request's event times at each hop, in seconds from when the relay sent its request."""

    request: RelayedRequest
    upstream: list[float] | None  # None: the backend does not say when it sent
    relay: list[float]
    page: list[float | None]
    texts: list[str]
    recording: str | None

    @property
    def page_label(self) -> str:
        return self.request.painted_by or KERNEL_CLIENT

    def first_token(self) -> int | None:
        return next((i for i, text in enumerate(self.texts) if text), None)


def hops(record: RelayedRequest, *, backend: str | None = None, speed: float | None = None) -> Hops:
    """The hop times of one relayed request (``relay.log.requests[-1]``)."""
    t0 = record.started
    relay = [t - t0 for t in record.forwarded]
    page = [None if t is None else t - t0 for t in record.painted] or [None] * len(relay)
    upstream, name = None, None
    kind, _ = resolve(backend)
    line = sent_log_line(record, backend=backend) if kind == "replay" and record.headers is not None else None
    if line is not None:
        name = line["recording"]
        recording = next(r for r in shared_replay_server().index.recordings() if r.name == name)
        pace = active_backend(backend, speed=speed).speed or float("inf")
        upstream = [event.t / pace for event in (recording.events or [])][: len(relay)]
    return Hops(record, upstream, relay, page, [_delta_text(d) for d in record.data], name)


def _p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98] if len(values) > 1 else values[0]


def _delays(later: list[Any], earlier: list[Any]) -> list[float]:
    return [b - a for a, b in zip(earlier, later, strict=False) if a is not None and b is not None]


def summary(h: Hops) -> list[dict[str, Any]]:
    """A row per hop: its first-token time, and the delay it adds per event (median, p99, in ms)."""
    first = h.first_token()
    rows: list[dict[str, Any]] = []
    earlier: list[Any] | None = None
    for name, times in (("upstream sent", h.upstream), ("relay forwarded", h.relay), (h.page_label, h.page)):
        if times is None:
            continue
        row: dict[str, Any] = dict.fromkeys(("first_token_s", "added_median_ms", "added_p99_ms"))
        row["hop"] = name
        if first is not None and first < len(times):
            row["first_token_s"] = times[first]
        added = _delays(times, earlier) if earlier is not None else []
        if added:
            row["added_median_ms"] = statistics.median(added) * 1000
            row["added_p99_ms"] = _p99(added) * 1000
        rows.append(row)
        earlier = times
    return rows


def _cell(value: float | None, unit: str) -> str:
    return "-" if value is None else f"{value:.3f} {unit}" if unit == "s" else f"{value:.1f} {unit}"


def table(h: Hops) -> str:
    """``summary`` as aligned text."""

    lines = [f"{'hop':<44} {'first token':>12} {'added, median':>14} {'added, p99':>12}"]
    for row in summary(h):
        lines.append(
            f"{row['hop']:<44} {_cell(row['first_token_s'], 's'):>12} "
            f"{_cell(row['added_median_ms'], 'ms'):>14} {_cell(row['added_p99_ms'], 'ms'):>12}"
        )
    return "\n".join(lines)


def compare(runs: dict[str, Hops]) -> str:
    """One line per run: the last hop's first-token time and added delay (median, p99), and the relay's."""

    lines = [f"{'run':<48} {'first token':>11} {'median':>10} {'p99':>10}   relay hop: median / p99"]
    for label, h in runs.items():
        *_, relay, last = summary(h)
        lines.append(
            f"{label:<48} {_cell(last['first_token_s'], 's'):>11} {_cell(last['added_median_ms'], 'ms'):>10} "
            f"{_cell(last['added_p99_ms'], 'ms'):>10}   "
            f"{_cell(relay['added_median_ms'], 'ms')} / {_cell(relay['added_p99_ms'], 'ms')}"
        )
    return "\n".join(lines)


def chart(h: Hops, title: str) -> dict[str, str]:
    """Two panels, as a display bundle (a PNG): each event's time at each hop; the delay each hop adds.

    Shown with ``IPython.display.display(bundle, raw=True)``; its text says what it shows (nbval compares it).
    """
    from matplotlib.figure import Figure

    from ..charts.static import _png, image_bundle

    fig = Figure(figsize=(9, 5.5), layout="constrained")
    timeline, added = fig.subplots(2, 1)
    series = [("upstream sent", h.upstream), ("relay forwarded", h.relay), (h.page_label, h.page)]
    earlier: list[Any] | None = None
    for colour, (name, times) in zip(("C0", "C1", "C2"), series, strict=True):
        if times is None:
            continue
        points = [(t, i + 1) for i, t in enumerate(times) if t is not None]
        if points:
            xs, ys = [t for t, _ in points], [n for _, n in points]
            timeline.step(xs, ys, where="post", label=name, color=colour)
        if earlier is not None:
            pairs = [
                (i + 1, (b - a) * 1000)
                for i, (a, b) in enumerate(zip(earlier, times, strict=False))
                if a is not None and b is not None
            ]
            xs, ys = [i for i, _ in pairs], [d for _, d in pairs]
            added.plot(xs, ys, ".", markersize=3, label=name, color=colour)
        earlier = times
    first = h.first_token()
    if first is not None and first < len(h.relay):
        timeline.axvline(h.relay[first], color="grey", linewidth=0.8, linestyle=":")
    timeline.set(xlabel="seconds since the relay sent the request", ylabel="events", title=title)
    timeline.legend(loc="upper left")
    added.set(xlabel="event", ylabel="delay added by the hop (ms)")
    added.set_yscale("symlog", linthresh=1)  # linear below 1 ms, where clock noise lives
    added.legend(loc="upper left")
    return image_bundle(_png(fig), f"hop chart: {title}")
