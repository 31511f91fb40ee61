"""A chart reports its own error: the replay server's send lag and the reader's receive lag, in words.

A deliberately slow replay server (each write held back after its due time) must make the chart
say the machine was busy, and by how much; a normal replay reports its lag below that; a stream
from any other server says it has no schedule.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import openai
import pytest
import streamscope.charts.static as static
from streamscope.backends import registry
from streamscope.charts import LiveChart, RaceChart
from streamscope.lag import BUSY_P99_MS, StreamLag, lag_of
from streamscope.replay import ReplayServer, sending

from tests.synthetic_recordings import CHAT_BODY, finished_line, synthetic_chat_recording

DELAY_S = 0.03  # the slow server's extra delay per write: six times the busy threshold


@pytest.fixture
def replay() -> Iterator[ReplayServer]:
    server = ReplayServer(recordings=[synthetic_chat_recording()]).start()
    registry.use("replay", server)
    yield server
    registry.reset("replay")


@pytest.fixture
def slow(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every write waits DELAY_S past its due time, as on a machine too busy to wake the server."""
    on_time = sending._sleep_until

    async def late(due: float) -> None:
        await on_time(due)
        await asyncio.sleep(DELAY_S)

    monkeypatch.setattr(sending, "_sleep_until", late)


def _stream(server: ReplayServer):
    return openai.OpenAI(base_url=server.base_url, api_key="test").chat.completions.create(**CHAT_BODY)


def _chart(server: ReplayServer, captions: list[str], monkeypatch: pytest.MonkeyPatch) -> LiveChart:
    drawn = static.timeline_png
    monkeypatch.setattr(static, "timeline_png", lambda **kw: captions.append(kw["caption"]) or drawn(**kw))
    chart = LiveChart("lag")
    chart.display = lambda: None  # type: ignore[method-assign]
    chart._shown = True  # as if displayed: the static copy is drawn
    chart.run(lambda: _stream(server))
    return chart


def test_the_sent_log_holds_each_events_due_and_sent_time(replay: ReplayServer) -> None:
    for _ in _stream(replay):
        pass
    line = finished_line(replay)
    assert line["state"] == "complete"
    assert len(line["due_s"]) == len(line["sent_s"]) == line["events_sent"] == line["events_total"]
    recorded = [e.t for e in synthetic_chat_recording().events]
    assert line["due_s"] == pytest.approx(recorded)
    assert all(s >= d for s, d in zip(line["sent_s"], line["due_s"], strict=True))


def test_a_normal_replay_reports_its_lag_in_the_summary(
    replay: ReplayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    captions: list[str] = []
    chart = _chart(replay, captions, monkeypatch)
    lag = chart.lag
    assert lag is not None and lag.no_schedule is None
    assert lag.send_p99_ms is not None and 0 <= lag.send_p50_ms <= lag.send_p99_ms < DELAY_S * 1000
    assert lag.receive_p99_ms is not None and lag.receive_p99_ms >= 0
    said = f"replay lag p50 {lag.send_p50_ms:.2f} ms / p99 {lag.send_p99_ms:.2f} ms"
    assert said in chart.summary() and said in chart.view.status_widget.value and said in captions[-1]


def test_a_slow_server_makes_the_chart_say_the_machine_was_busy_and_by_how_much(
    replay: ReplayServer, slow: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    captions: list[str] = []
    chart = _chart(replay, captions, monkeypatch)
    lag = chart.lag
    assert lag is not None and lag.busy
    # The first event of every write goes out DELAY_S late; events due meanwhile go with it, less late.
    assert lag.send_p99_ms is not None and lag.send_p99_ms >= DELAY_S * 1000
    said = f"MACHINE BUSY: chunks {lag.worst_p99_ms:.1f} ms late at p99"
    for text in (chart.summary(), chart.view.status_widget.value, captions[-1]):
        assert said in text


def test_a_race_says_which_streams_were_disturbed(replay: ReplayServer, slow: None) -> None:
    race = RaceChart("race", ["a", "b"])
    sdk = openai.AsyncOpenAI(base_url=replay.base_url, api_key="test")
    asyncio.run(race.run({n: (lambda: sdk.chat.completions.create(**CHAT_BODY)) for n in ["a", "b"]}))
    assert set(race.lags) == {"a", "b"} and all(lag.busy for lag in race.lags.values())
    assert race.summary().count("MACHINE BUSY") == 2


def test_a_stream_from_another_server_has_no_schedule(replay: ReplayServer) -> None:
    with ReplayServer(recordings=[synthetic_chat_recording()]) as other:
        chart = LiveChart("other")
        chart.run(lambda: _stream(other))
    said = "not from the replay server: no schedule to measure lag against"
    assert chart.lag == StreamLag(no_schedule=said)
    assert chart.summary().endswith("no schedule to measure lag against")


def test_the_threshold_and_an_unpaced_replay() -> None:
    def line(lag_ms: float, **extra: object) -> dict:
        due = [0.01 * i for i in range(100)]
        return {"due_s": due, "sent_s": [d + lag_ms / 1000 for d in due], "events_total": 100, **extra}

    assert not lag_of(line(BUSY_P99_MS - 1), None, None).busy
    assert lag_of(line(BUSY_P99_MS + 1), None, None).busy
    unpaced = lag_of({"due_s": [], "sent_s": [], "events_total": 12}, None, None)
    assert unpaced.no_schedule is not None and "speed 0" in unpaced.no_schedule
