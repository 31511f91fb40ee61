"""Every notebook result names its source, and asks for a model the backend serves."""

import asyncio

import streamscope
from streamscope.backends.provenance import last_source

COUNT = [
    {
        "role": "user",
        "content": "Count to 100, with a comma between each number and no newlines. E.g., 1, 2, 3, ...",
    }
]


def test_replay_names_the_recording_that_answered(monkeypatch):
    monkeypatch.delenv("STREAMSCOPE_BACKEND", raising=False)
    client = streamscope.client(speed=0)
    client.chat.completions.create(model="gpt-3.5-turbo", messages=COUNT, temperature=0)
    assert last_source().startswith("source: seed-chat-count-to-100: gpt-3.5-turbo-0301, transcribed from")
    list(client.chat.completions.create(model="gpt-3.5-turbo", messages=COUNT, temperature=0, stream=True))
    assert last_source().startswith("source: seed-chat-count-to-100-stream:")


def test_replay_says_when_include_usage_was_not_recorded(monkeypatch):
    # The seed was recorded without include_usage: its stream answers, unchanged, and the source says so.
    monkeypatch.delenv("STREAMSCOPE_BACKEND", raising=False)
    client = streamscope.client(speed=0)
    usage = {"include_usage": True}
    chunks = list(
        client.chat.completions.create(
            model="gpt-3.5-turbo", messages=COUNT, temperature=0, stream=True, stream_options=usage
        )
    )
    assert all(chunk.usage is None for chunk in chunks)
    assert last_source().startswith("source: seed-chat-count-to-100-stream:")
    assert last_source().endswith(
        "(stream_options.include_usage was asked, but the recording was made without it: "
        "the stream as recorded, with no usage chunk (as a server that ignores the option answers))"
    )
    list(client.chat.completions.create(model="gpt-3.5-turbo", messages=COUNT, temperature=0, stream=True))
    assert "include_usage" not in last_source()


def test_live_names_the_server():
    assert last_source("http://localhost:11434/v1").startswith("source: live http://localhost:11434/v1, ")


ONE_PLUS_ONE = [{"role": "user", "content": "What's 1+1? Answer in one word."}]


def test_source_of_names_each_of_several_streams_at_once(monkeypatch):
    monkeypatch.delenv("STREAMSCOPE_BACKEND", raising=False)
    client = streamscope.async_client(speed=0)

    async def both():
        count, one_plus_one = await asyncio.gather(
            client.chat.completions.create(model="gpt-3.5-turbo", messages=COUNT, temperature=0, stream=True),
            client.chat.completions.create(
                model="gpt-3.5-turbo", messages=ONE_PLUS_ONE, temperature=0, stream=True
            ),
        )
        async with count, one_plus_one:
            return count, one_plus_one

    count, one_plus_one = asyncio.run(both())
    assert streamscope.source_of(count).startswith("source: seed-chat-count-to-100-stream:")
    assert streamscope.source_of(one_plus_one).startswith("source: seed-chat-1plus1-stream:")


def test_sent_log_line_shows_the_server_stopped_when_the_client_closed(monkeypatch):
    monkeypatch.delenv("STREAMSCOPE_BACKEND", raising=False)
    client = streamscope.client(speed=1)
    before = len(streamscope.sent_log())
    stream = client.chat.completions.create(model="gpt-3.5-turbo", messages=COUNT, temperature=0, stream=True)
    with stream:
        next(iter(stream))
    line = streamscope.sent_log_line(stream)
    assert line["recording"] == "seed-chat-count-to-100-stream"
    assert line["state"] == "client disconnected"
    assert 0 < line["events_sent"] < line["events_total"] == 303
    assert len(streamscope.sent_log()) == before + 1


def test_live_backends_have_no_sent_log_and_name_the_server():
    live = "http://localhost:11434/v1"

    class AnswerFromALiveServer:  # what a stream's response looks like without the replay header
        headers: dict = {}  # noqa: RUF012 - read only

    assert streamscope.sent_log(backend=live) is None
    assert streamscope.sent_log_line(AnswerFromALiveServer(), backend=live) is None
    assert streamscope.source_of(AnswerFromALiveServer(), backend=live).startswith(f"source: live {live}, ")
