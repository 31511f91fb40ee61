"""The recorder against servers that misbehave: a key echoed in a header, a stream that ends early, a
name already taken. Through the command line (``streamscope.cli.main``), with a canary key.

The misbehaving servers are raw sockets that answer one request with fixed bytes, written the
way the issue found them: a close-delimited stream cut after 2 of 5 events, and a chunked stream
that breaks inside a chunk.
"""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import httpx2
import openai
import pytest
from streamscope.cli import main
from streamscope.recording import Recording
from streamscope.replay import ReplayServer
from synthetic_recordings import CHAT_BODY, PROMPT, synthetic_chat_recording
from wire import raw_until_broken

CANARY = "sk-canary-0d6c2b9e41a7f358"
SHORTHAND = ["--model", "gpt-test", "--message", PROMPT]


def chunk(delta: dict, finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    body = {"id": "chatcmpl-x", "object": "chat.completion.chunk", "model": "gpt-x", "choices": [choice]}
    return f"data: {json.dumps(body)}\n\n".encode()


FIVE_EVENTS = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": "1"}),
    chunk({"content": ", 2"}),
    chunk({}, "stop"),
    b"data: [DONE]\n\n",
]


class OneShotServer(threading.Thread):
    """Reads one request, answers it with fixed bytes, and closes the connection."""

    def __init__(self, response: bytes) -> None:
        super().__init__(daemon=True)
        self.response = response
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/v1"
        self.start()

    def run(self) -> None:
        with self.listener, self.listener.accept()[0] as conn:
            received = b""
            while b"\r\n\r\n" not in received:
                received += conn.recv(65536)
            head, _, body = received.partition(b"\r\n\r\n")
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
            while len(body) < length:
                body += conn.recv(65536)
            conn.sendall(self.response)


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    monkeypatch.delenv("STREAMSCOPE_BACKEND", raising=False)
    return CANARY


def record(base_url: str, out: Path, *extra: str) -> int:
    return main(["record", "--backend", base_url, *SHORTHAND, "--name", "mine", "--out", str(out), *extra])


def test_a_key_echoed_in_a_kept_header_is_scrubbed(key: str, tmp_path: Path) -> None:
    rec = synthetic_chat_recording(body={k: v for k, v in CHAT_BODY.items() if k != "temperature"})
    rec.headers |= {"x-request-id": f"req_{key}", "openai-model": f"gpt-test ({key})"}
    with ReplayServer(speed=0, recordings=[rec]) as live:
        assert record(live.base_url, tmp_path) == 0
    saved = Recording.load(tmp_path / "mine.json")
    assert saved.headers["x-request-id"] == "req_[scrubbed]"
    assert saved.headers["openai-model"] == "gpt-test ([scrubbed])"
    assert key.encode() not in (tmp_path / "mine.json").read_bytes()


def test_a_name_already_recorded_is_kept_unless_forced(key: str, tmp_path: Path, capsys) -> None:
    rec = synthetic_chat_recording(body={k: v for k, v in CHAT_BODY.items() if k != "temperature"})
    with ReplayServer(speed=0, recordings=[rec]) as live:
        assert record(live.base_url, tmp_path) == 0
        first = (tmp_path / "mine.json").read_bytes()
        capsys.readouterr()
        assert record(live.base_url, tmp_path) == 2
        err = capsys.readouterr().err
        assert "--force" in err
        assert len(err.strip().splitlines()) == 1
        assert (tmp_path / "mine.json").read_bytes() == first
        assert len(live.sent) == 1  # refused before asking: a live request costs money
        assert record(live.base_url, tmp_path, "--force") == 0
        assert len(live.sent) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["mine.json"]


def test_a_close_delimited_stream_cut_early_is_kept_marked_and_replayed_as_it_ended(
    key: str, tmp_path: Path, capsys
) -> None:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"
    server = OneShotServer(head + b"".join(FIVE_EVENTS[:2]))
    assert record(server.base_url, tmp_path) == 3
    assert "incomplete" in capsys.readouterr().err
    saved = Recording.load(tmp_path / "mine.json")
    assert [e.raw.encode() for e in saved.events or []] == FIVE_EVENTS[:2]
    assert saved.incomplete is not None
    assert not saved.incomplete.dropped
    with ReplayServer(speed=0, recordings=tmp_path) as replay:
        received, broke = raw_until_broken(replay, saved.request["body"])
    assert (received, broke) == (b"".join(FIVE_EVENTS[:2]), None)


def test_a_chunked_stream_that_breaks_keeps_what_arrived_and_replays_broken(
    key: str, tmp_path: Path, capsys
) -> None:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(event), event) for event in FIVE_EVENTS[:2])
    half = FIVE_EVENTS[2][:20]
    server = OneShotServer(head + chunks + b"%x\r\n%s" % (len(FIVE_EVENTS[2]), half))
    assert record(server.base_url, tmp_path) == 3
    assert "incomplete" in capsys.readouterr().err
    saved = Recording.load(tmp_path / "mine.json")
    assert saved.sse_bytes() == b"".join(FIVE_EVENTS[:2]) + half
    assert saved.incomplete is not None
    assert saved.incomplete.dropped
    with ReplayServer(speed=0, recordings=tmp_path) as replay:
        received, broke = raw_until_broken(replay, saved.request["body"])
        assert received == saved.sse_bytes()
        assert isinstance(broke, httpx2.RemoteProtocolError)
        client = openai.OpenAI(base_url=replay.base_url, api_key="test", max_retries=0)
        contents = []
        with pytest.raises(openai.APIConnectionError):
            for c in client.chat.completions.create(**saved.request["body"]):
                contents.append(c.choices[0].delta.content)
        assert contents == ["", "1"]


def test_a_body_that_breaks_off_is_kept_as_text_and_replayed_broken(key: str, tmp_path: Path) -> None:
    partial = b'{"id": "chatcmpl-x", "object": "chat.completion", "choices": [{"ind'
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 400\r\n\r\n"
    server = OneShotServer(head + partial)
    assert record(server.base_url, tmp_path) == 3
    saved = Recording.load(tmp_path / "mine.json")
    assert (saved.body, saved.streamed) == (partial.decode(), False)
    assert saved.incomplete is not None
    assert saved.incomplete.dropped
    with ReplayServer(speed=0, recordings=tmp_path) as replay:
        received, broke = raw_until_broken(replay, saved.request["body"])
    assert received == partial
    assert isinstance(broke, httpx2.RemoteProtocolError)
