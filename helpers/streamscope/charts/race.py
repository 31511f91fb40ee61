"""RaceChart: several streams at once on one chart, one line each."""

from __future__ import annotations

import asyncio
import html
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..reader import StreamReader
from ..timing import Timeline
from ._base import (
    _TEXT_STYLE,
    CSS_RACE_CHART,
    _ChartBase,
    _followed_by_a_static_copy,
    _live_box,
    _new_figure,
)

__all__ = [
    "RaceChart",
    "RaceView",
]


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
        from .static import race_png

        return race_png(title=self.title, lines=self._xs, marks=self._marks, caption=caption)


class RaceChart(_ChartBase):
    """A live chart of several streams, one line per stream, on one time axis: a race.

    ``await chart.run({name: factory, ...})`` reads every stream at once, each with an async
    :class:`~streamscope.reader.StreamReader` in a task of this event loop (``AsyncOpenAI``);
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

    @property
    def starts(self) -> dict[str, float]:
        """When each stream's request was sent, in seconds since the race started."""
        return {
            name: reader.started_at - self._start
            for name, reader in self.readers.items()
            if reader.started_at is not None and self._start is not None
        }

    @property
    def timelines(self) -> dict[str, Timeline]:
        return {name: reader.timeline for name, reader in self.readers.items()}

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
        self._show_final_state(self.summary())

    def summary(self) -> str:
        """One line per stream (chunks, first token, end, when it started), then the race's wall time."""
        if not self.readers:
            return f"{self.title}: not run yet"
        starts = self.starts
        lines = []
        for name, reader in self.readers.items():
            timeline = reader.timeline
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
