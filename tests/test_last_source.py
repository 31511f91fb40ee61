"""Every notebook result names its source, and asks for a model the backend serves."""

import streamscope
from streamscope.backend import last_source

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


def test_live_names_the_server():
    assert last_source("http://localhost:11434/v1").startswith("source: live http://localhost:11434/v1, ")


def test_model_is_the_recorded_one_on_replay_and_current_or_chosen_live(monkeypatch):
    monkeypatch.delenv("STREAMSCOPE_MODEL", raising=False)
    assert streamscope.model("text-davinci-002", live="gpt-3.5-turbo-instruct", backend="replay") == (
        "text-davinci-002"
    )
    live = "http://localhost:11434/v1"
    assert streamscope.model("text-davinci-002", live="gpt-3.5-turbo-instruct", backend=live) == (
        "gpt-3.5-turbo-instruct"
    )
    monkeypatch.setenv("STREAMSCOPE_MODEL", "llama3.2")
    assert streamscope.model("text-davinci-002", live="gpt-3.5-turbo-instruct", backend=live) == "llama3.2"
