"""Tests of the race chart (streamscope.charts.RaceChart): several async streams, one line each, one clock.

The streams are test-only async generators of chat-completion chunk dicts; no frontend is attached.
Nothing here asserts a duration: order and overlap are checked with events the streams wait on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from streamscope.charts import CSS_CHART, CSS_CONTAINER, CSS_RACE_CHART, CSS_TEXT, RaceChart

NAMES = ["first", "second"]


def _chunk(delta: dict, finish_reason: str | None = None) -> dict:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "test-only",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


async def _source(pieces: list[str], *, wait_for: asyncio.Event | None = None, fail_after: int | None = None):
    """A test-only async stream: a role chunk, a chunk per piece (after ``wait_for``, if given), a finish."""
    yield _chunk({"role": "assistant"})
    if wait_for is not None:
        await wait_for.wait()
    for i, piece in enumerate(pieces):
        if i == fail_after:
            raise ConnectionError("connection dropped by the test source")
        await asyncio.sleep(0.001)
        yield _chunk({"content": piece})
    yield _chunk({}, "stop")


def test_streams_run_at_once_each_on_its_own_line_and_text() -> None:
    async def race() -> RaceChart:
        # The first stream cannot finish until the second has sent its text: only possible at once.
        second_done = asyncio.Event()

        async def second() -> AsyncIterator[dict]:
            async for chunk in _source(["x", "y"]):
                yield chunk
            second_done.set()

        chart = RaceChart("test", NAMES)
        await chart.run(
            {"first": lambda: _source(["a", "b", "c"], wait_for=second_done), "second": lambda: second()}
        )
        return chart

    chart = asyncio.run(race())
    first, second = chart.figure.data
    assert (first.name, second.name) == tuple(NAMES)
    assert list(first.y) == [1, 2, 3] and list(second.y) == [1, 2]
    assert min(first.x) > max(second.x)  # the first stream's text came after all of the second's
    assert chart.view.text("first") == "abc" and chart.view.text("second") == "xy"
    assert "abc" in chart.view.text_widget.value and "xy" in chart.view.text_widget.value
    timelines = chart.timelines
    assert [len(timelines[name].chunks) for name in NAMES] == [5, 4]
    summary = chart.summary()
    assert "first: 5 chunks (3 with content)" in summary and "all done" in summary
    assert "INCOMPLETE" not in summary


def test_one_after_another_sends_each_request_when_the_one_before_has_ended() -> None:
    async def relay() -> RaceChart:
        chart = RaceChart("test", NAMES)
        await chart.run(
            {"first": lambda: _source(["a", "b"]), "second": lambda: _source(["x"])}, one_after_another=True
        )
        return chart

    chart = asyncio.run(relay())
    first = chart.timelines["first"]
    assert chart.starts["second"] >= chart.starts["first"] + first.end
    # Drawn on the race's clock: the second line starts after the first one's last point.
    assert min(chart.figure.data[1].x) > max(chart.figure.data[0].x)
    assert chart.wall_seconds is not None and chart.wall_seconds >= chart.starts["second"]


def test_an_error_in_one_stream_leaves_the_others_running_and_is_reraised_at_the_end() -> None:
    chart = RaceChart("test", NAMES)
    factories = {
        "first": lambda: _source(["a", "b", "c"], fail_after=1),
        "second": lambda: _source(["x", "y"]),
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
    chart = RaceChart("test", NAMES)
    with pytest.raises(ValueError, match="one factory per stream"):
        asyncio.run(chart.run({"first": lambda: _source(["a"])}))


def test_the_page_finds_the_race_and_its_saved_output_is_the_same_every_run() -> None:
    chart = RaceChart("Three at once", NAMES, mark_seconds=2.5, mark_label="one after another")
    assert CSS_CONTAINER in chart.widget._dom_classes
    assert CSS_CHART in chart.figure._dom_classes and CSS_RACE_CHART in chart.figure._dom_classes
    assert CSS_TEXT in chart.view.text_widget._dom_classes
    assert chart.figure.layout.shapes[0].x0 == 2.5
    bundle = chart._repr_mimebundle_()
    assert bundle["text/plain"] == "RaceChart('Three at once')"
    assert "application/vnd.jupyter.widget-view+json" in bundle
