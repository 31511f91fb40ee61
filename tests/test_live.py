"""Tests of the live and race charts (streamscope.charts): reader/updater split, batching, throttling, errors.

The chunk sources here are test-only generators of chat-completion chunk dicts; no frontend is
attached (plotly's FigureWidget works headless), and nothing here asserts on durations.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from streamscope import charts
from streamscope.charts import (
    CSS_CHART,
    CSS_CONTAINER,
    CSS_RACE_CHART,
    CSS_TEXT,
    LiveChart,
    RaceChart,
    preload,
)
from synthetic_streams import PIECES, chunk, chunk_source


def _chart(**kwargs) -> LiveChart:
    return LiveChart(
        "test", baseline_seconds=1.0, baseline_tokens=len(PIECES), label="test-only source", **kwargs
    )


def _count_messages(chart: LiveChart) -> dict[str, int]:
    """Count the figure's messages to the frontend, by kind."""
    counts = {"update": 0, "restyle": 0, "relayout": 0}
    for kind in counts:
        name = f"_send_{kind}_msg"
        original = getattr(chart.figure, name)

        def counting(*args, _kind=kind, _original=original, **kwargs):
            counts[_kind] += 1
            return _original(*args, **kwargs)

        setattr(chart.figure, name, counting)
    return counts


def test_final_figure_holds_every_content_chunk_at_its_arrival_offset():
    chart = _chart()
    timeline = chart.run(lambda: chunk_source())
    streamed = chart.figure.data[0]
    assert len(timeline.chunks) == len(PIECES) + 2
    assert list(streamed.x) == timeline.offsets[1:-1]  # the role and finish chunks carry no content
    assert list(streamed.y) == list(range(1, len(PIECES) + 1))
    assert chart.text == "".join(PIECES)
    assert chart.result.object["choices"][0]["message"]["content"] == "".join(PIECES)
    assert chart.complete


def test_each_redraw_is_one_batched_message_and_never_more_than_one_per_chunk():
    chart = _chart()
    messages = _count_messages(chart)
    chart.run(lambda: chunk_source())
    assert 1 <= chart.updates <= len(PIECES) + 2
    assert messages == {"update": chart.updates, "restyle": 0, "relayout": 0}


def test_throttle_interval_bounds_redraws_while_streaming():
    # A throttle interval far longer than the stream: the only redraw is the final one.
    chart = _chart(max_updates_per_s=1e-6)
    chart.run(lambda: chunk_source())
    assert chart.updates == 1
    assert len(chart.figure.data[0].x) == len(PIECES)


def test_redraws_happen_while_the_stream_is_still_arriving():
    chart = _chart()
    seen_mid_stream = []

    def waits_for_a_redraw() -> Iterator[dict]:
        yield chunk({"content": "first"})
        deadline = time.monotonic() + 30
        while chart.updates == 0 and time.monotonic() < deadline:
            time.sleep(0.001)
        seen_mid_stream.append((chart.updates, chart.text))
        yield chunk({"content": " second"})

    chart.run(waits_for_a_redraw)
    assert seen_mid_stream == [(1, "first")]
    assert chart.text == "first second"


def test_clock_starts_in_the_reader_right_before_the_request_is_created():
    chart = _chart()
    seen = {}

    def factory() -> Iterator[dict]:
        seen["called"] = time.perf_counter()
        seen["thread"] = threading.current_thread()
        time.sleep(0.01)  # the request takes a while: the first offset must include it
        seen["responded"] = time.perf_counter()
        return chunk_source()

    timeline = chart.run(factory)
    assert seen["thread"] is not threading.current_thread()
    assert timeline.offsets[0] >= seen["responded"] - seen["called"]


def test_broken_stream_keeps_what_arrived_marks_it_and_reraises_after_finalizing():
    chart = _chart()
    with pytest.raises(ConnectionError, match="dropped by the test source"):
        chart.run(lambda: chunk_source(fail_after=10))
    assert chart.text == "".join(PIECES[:10])
    assert list(chart.figure.data[0].y) == list(range(1, 11))
    assert not chart.complete
    summary = chart.summary()
    assert summary.startswith("11 chunks (10 with content)")
    assert "INCOMPLETE: ConnectionError: connection dropped by the test source" in summary


def test_request_failing_before_any_chunk_is_reraised_and_summarized():
    def refused() -> Iterator[dict]:
        raise PermissionError("401 from the test factory")

    chart = _chart()
    with pytest.raises(PermissionError):
        chart.run(refused)
    assert chart.summary().startswith(
        "0 chunks (0 with content); no content received; INCOMPLETE: PermissionError"
    )


def test_switch_interval_is_restored_after_a_run_and_after_an_error():
    before = sys.getswitchinterval()
    _chart().run(lambda: chunk_source())
    assert sys.getswitchinterval() == before
    with pytest.raises(ConnectionError):
        _chart().run(lambda: chunk_source(fail_after=1))
    assert sys.getswitchinterval() == before


def test_a_chart_charts_one_stream():
    chart = _chart()
    chart.run(lambda: chunk_source())
    with pytest.raises(RuntimeError, match="one stream"):
        chart.run(lambda: chunk_source())


def test_summary_names_counts_first_token_baseline_and_label():
    chart = _chart()
    assert chart.summary() == "test: not run yet"
    timeline = chart.run(lambda: chunk_source())
    assert chart.summary() == (
        f"{len(PIECES) + 2} chunks ({len(PIECES)} with content) in {timeline.end:.2f} s; "
        f"first token at {timeline.offsets[1]:.2f} s (streamed) vs whole reply at 1.00 s (non-streamed) "
        "[test-only source]"
    )
    assert chart.status_widget.value == chart.summary()


def test_stream_ending_without_finish_reason_is_marked_incomplete():
    chart = _chart()
    chart.run(lambda: (chunk for chunk in list(chunk_source())[:-1]))
    assert chart.text == "".join(PIECES)
    assert not chart.complete
    assert "INCOMPLETE: choice 0 ended without a finish_reason" in chart.summary()


def test_chunks_that_cannot_be_assembled_are_still_charted_and_said():
    chart = _chart()
    chart.run(lambda: iter([{"unknown": 1}, *chunk_source()]))
    assert chart.text == "".join(PIECES)
    assert len(chart.figure.data[0].x) == len(PIECES)
    assert "INCOMPLETE: not assembled (not a chat, completions or Responses stream event" in chart.summary()


def test_interrupt_keeps_what_arrived_stops_the_reader_and_reraises():
    chart = _chart()
    closed = threading.Event()
    draw = chart.update

    def endless() -> Iterator[dict]:
        try:
            yield chunk({"content": "so far"})
            while True:
                time.sleep(0.001)
                yield chunk({"content": "."})
        finally:
            closed.set()

    def interrupted_draw():  # as if the user pressed "interrupt kernel" during a redraw
        draw()
        if chart.text:
            chart.update = draw
            raise KeyboardInterrupt

    chart.update = interrupted_draw
    with pytest.raises(KeyboardInterrupt):
        chart.run(endless)
    assert chart.text.startswith("so far")
    assert "INCOMPLETE: interrupted" in chart.summary()
    assert closed.wait(30)


def test_display_bundle_has_fixed_text_and_the_container_view():
    chart = _chart()
    bundle = chart._repr_mimebundle_()
    assert bundle["text/plain"] == "LiveChart('test')"
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == chart.widget.model_id


def test_dom_classes_for_the_browser_test():
    chart = _chart()
    assert CSS_CONTAINER in chart.widget._dom_classes
    assert CSS_CHART in chart.figure._dom_classes
    assert CSS_TEXT in chart.text_widget._dom_classes


def test_final_figure_state_is_synced_for_views_opened_later():
    chart = _chart()
    chart.run(lambda: chunk_source())
    assert chart.figure._widget_data[0]["y"] == list(range(1, len(PIECES) + 1))
    assert chart.figure._widget_layout["annotations"][0]["text"].startswith("first token")


async def _async_source(fail_after: int | None = None) -> AsyncIterator[dict]:
    for piece in chunk_source(gap=0, fail_after=fail_after):
        await asyncio.sleep(0.001)
        yield piece


def test_run_async_charts_an_async_stream_created_by_a_coroutine():
    async def create() -> AsyncIterator[dict]:  # like AsyncOpenAI's create(stream=True)
        return _async_source()

    chart = _chart()
    timeline = asyncio.run(chart.run_async(create))
    assert chart.text == "".join(PIECES)
    assert list(chart.figure.data[0].x) == timeline.offsets[1:-1]
    assert chart.complete


def test_run_async_error_keeps_what_arrived_and_reraises():
    chart = _chart()
    with pytest.raises(ConnectionError):
        asyncio.run(chart.run_async(lambda: _async_source(fail_after=5)))
    assert chart.text == "".join(PIECES[:5])
    assert "INCOMPLETE: ConnectionError" in chart.summary()


def test_baseline_without_a_token_count_is_a_line_at_its_moment():
    chart = LiveChart("test", baseline_seconds=1.5)
    assert len(chart.figure.data) == 1  # no step: there is no count to step to
    line = chart.figure.layout.shapes[1]
    assert (line.x0, line.x1, line.visible) == (1.5, 1.5, None)
    chart.run(lambda: chunk_source())
    assert chart.figure.layout.shapes[0].visible  # the first-token marker
    assert chart.figure.layout.shapes[1].x0 == 1.5
    assert "vs whole reply at 1.50 s (non-streamed)" in chart.summary()


def test_preload_makes_the_figure_the_next_chart_uses():
    preload()
    spare = charts._base._SPARE_FIGURES[-1]
    chart = _chart()
    assert chart.figure is spare
    assert not charts._base._SPARE_FIGURES
    assert _chart().figure is not spare  # with no spare left, a chart makes its own
    chart.run(lambda: chunk_source())
    assert list(chart.figure.data[0].y) == list(range(1, len(PIECES) + 1))
    assert [trace.name for trace in chart.figure.data] == [
        "streamed: content chunks",
        "non-streamed: completion tokens",
    ]


# --- the race chart: several async streams, one line each, one clock --------
# Order and overlap are checked with events the streams wait on, never with durations.

RACE_NAMES = ["first", "second"]


async def _race_source(
    pieces: list[str], *, wait_for: asyncio.Event | None = None, fail_after: int | None = None
):
    """A test-only async stream: a role chunk, a chunk per piece (after ``wait_for``, if given), a finish."""
    yield chunk({"role": "assistant"})
    if wait_for is not None:
        await wait_for.wait()
    for i, piece in enumerate(pieces):
        if i == fail_after:
            raise ConnectionError("connection dropped by the test source")
        await asyncio.sleep(0.001)
        yield chunk({"content": piece})
    yield chunk({}, "stop")


def test_streams_run_at_once_each_on_its_own_line_and_text() -> None:
    async def race() -> RaceChart:
        # The first stream cannot finish until the second has sent its text: only possible at once.
        second_done = asyncio.Event()

        async def second() -> AsyncIterator[dict]:
            async for piece in _race_source(["x", "y"]):
                yield piece
            second_done.set()

        chart = RaceChart("test", RACE_NAMES)
        await chart.run(
            {"first": lambda: _race_source(["a", "b", "c"], wait_for=second_done), "second": lambda: second()}
        )
        return chart

    chart = asyncio.run(race())
    first, second = chart.figure.data
    assert (first.name, second.name) == tuple(RACE_NAMES)
    assert list(first.y) == [1, 2, 3] and list(second.y) == [1, 2]
    assert min(first.x) > max(second.x)  # the first stream's text came after all of the second's
    assert chart.view.text("first") == "abc" and chart.view.text("second") == "xy"
    assert "abc" in chart.view.text_widget.value and "xy" in chart.view.text_widget.value
    timelines = chart.timelines
    assert [len(timelines[name].chunks) for name in RACE_NAMES] == [5, 4]
    summary = chart.summary()
    assert "first: 5 chunks (3 with content)" in summary and "all done" in summary
    assert "INCOMPLETE" not in summary


def test_one_after_another_sends_each_request_when_the_one_before_has_ended() -> None:
    async def relay() -> RaceChart:
        chart = RaceChart("test", RACE_NAMES)
        await chart.run(
            {"first": lambda: _race_source(["a", "b"]), "second": lambda: _race_source(["x"])},
            one_after_another=True,
        )
        return chart

    chart = asyncio.run(relay())
    first = chart.timelines["first"]
    assert chart.starts["second"] >= chart.starts["first"] + first.end
    # Drawn on the race's clock: the second line starts after the first one's last point.
    assert min(chart.figure.data[1].x) > max(chart.figure.data[0].x)
    assert chart.wall_seconds is not None and chart.wall_seconds >= chart.starts["second"]


def test_an_error_in_one_stream_leaves_the_others_running_and_is_reraised_at_the_end() -> None:
    chart = RaceChart("test", RACE_NAMES)
    factories = {
        "first": lambda: _race_source(["a", "b", "c"], fail_after=1),
        "second": lambda: _race_source(["x", "y"]),
    }
    with pytest.raises(ConnectionError):
        asyncio.run(chart.run(factories))
    assert chart.view.text("first") == "a"
    assert chart.view.text("second") == "xy"
    assert "first: 2 chunks (1 with content)" in chart.summary()
    assert "INCOMPLETE: ConnectionError" in chart.summary()
    assert "second: 4 chunks (2 with content)" in chart.view.status_widget.value


def test_a_race_needs_distinct_names_and_one_factory_per_name() -> None:
    with pytest.raises(ValueError, match="distinct"):
        RaceChart("test", ["same", "same"])
    chart = RaceChart("test", RACE_NAMES)
    with pytest.raises(ValueError, match="one factory per stream"):
        asyncio.run(chart.run({"first": lambda: _race_source(["a"])}))


def test_the_page_finds_the_race_and_its_saved_output_is_the_same_every_run() -> None:
    chart = RaceChart("Three at once", RACE_NAMES, mark_seconds=2.5, mark_label="one after another")
    assert CSS_CONTAINER in chart.widget._dom_classes
    assert CSS_CHART in chart.figure._dom_classes and CSS_RACE_CHART in chart.figure._dom_classes
    assert CSS_TEXT in chart.view.text_widget._dom_classes
    assert chart.figure.layout.shapes[0].x0 == 2.5
    bundle = chart._repr_mimebundle_()
    assert bundle["text/plain"] == "RaceChart('Three at once')"
    assert "application/vnd.jupyter.widget-view+json" in bundle


def test_a_cancelled_race_keeps_what_arrived_and_says_it_was_interrupted() -> None:
    never = asyncio.Event()

    async def cancel_midway() -> RaceChart:
        chart = RaceChart("test", RACE_NAMES)
        factories = {
            "first": lambda: _race_source(["a"]),
            "second": lambda: _race_source(["x"], wait_for=never),
        }
        race = asyncio.ensure_future(chart.run(factories))
        while not chart.readers or not chart.readers["first"].finished:
            await asyncio.sleep(0.001)
        race.cancel()
        with pytest.raises(asyncio.CancelledError):
            await race
        return chart

    chart = asyncio.run(cancel_midway())
    assert chart.view.text("first") == "a"
    summary = chart.summary()
    assert "second: 1 chunks (0 with content)" in summary and "INCOMPLETE: interrupted" in summary
    assert "first: 3 chunks (1 with content)" in summary
