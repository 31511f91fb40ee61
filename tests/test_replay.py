"""The replay server: answers, errors, pacing structure, disconnects, the serve command.

The recordings used here are built by the tests, in memory or in tmp_path, from
made-up offsets: they exist only to exercise the server and are never saved with
the package. No test asserts a duration (benchmarks/replay.py measures timing).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx2
import openai
import pytest
import streamscope.matching
import streamscope.replay.app
import streamscope.replay.index
from streamscope.recording import Event, Recording
from streamscope.replay import FAULT_HEADER, SPEED_HEADER, RecordingIndex, ReplayServer, create_app
from streamscope.replay.contract import ARRIVAL_KEY
from streamscope.replay.index import _Entry
from streamscope.replay.sending import _paced_events, _Stats
from synthetic_recordings import (
    CHAT_BODY,
    PROMPT,
    WORDS,
    synthetic_chat_recording,
    synthetic_completion_recording,
)


@pytest.fixture(scope="module")
def server():
    with ReplayServer(
        speed=0, recordings=[synthetic_chat_recording(), synthetic_completion_recording()]
    ) as srv:
        yield srv


def test_sdk_stream_replays_the_recorded_reply(server: ReplayServer) -> None:
    client = openai.OpenAI(base_url=server.base_url, api_key="test")
    chunks = list(client.chat.completions.create(**CHAT_BODY))
    assert [c.choices[0].delta.content for c in chunks[1:-1]] == WORDS
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_stream_body_is_the_recorded_bytes(server: ReplayServer) -> None:
    rec = synthetic_chat_recording()
    response = httpx2.post(server.base_url + "/chat/completions", json=CHAT_BODY)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-request-id"] == "req_test"
    assert response.content == rec.sse_bytes()


def test_async_client_replays_the_same_way(server: ReplayServer) -> None:
    async def collect() -> list[str | None]:
        async with openai.AsyncOpenAI(base_url=server.base_url, api_key="test") as client:
            stream = await client.chat.completions.create(**CHAT_BODY)
            return [chunk.choices[0].delta.content async for chunk in stream]

    assert asyncio.run(collect())[1:-1] == WORDS


def test_non_streamed_body(server: ReplayServer) -> None:
    client = openai.OpenAI(base_url=server.base_url, api_key="test")
    completion = client.completions.create(model="gpt-test", prompt="1, 2,")
    assert completion.choices[0].text == " 3"


def test_fields_that_cannot_change_the_output_are_ignored(server: ReplayServer) -> None:
    client = openai.OpenAI(base_url=server.base_url, api_key="test")
    chunks = list(
        client.chat.completions.create(**CHAT_BODY, user="someone", metadata={"run": "7"}, store=False)
    )
    assert len(chunks) == len(WORDS) + 2


def test_responses_api_stream(server: ReplayServer) -> None:
    body = {"model": "gpt-test", "input": PROMPT, "stream": True}
    response = {"id": "resp_test", "object": "response", "model": "gpt-test-0001", "status": "in_progress"}
    events = [
        ("response.created", {"response": response, "sequence_number": 0}),
        (
            "response.output_text.delta",
            {
                "delta": "1, 2",
                "item_id": "msg_test",
                "output_index": 0,
                "content_index": 0,
                "sequence_number": 1,
            },
        ),
        ("response.completed", {"response": {**response, "status": "completed"}, "sequence_number": 2}),
    ]
    rec = Recording(
        name="test-responses",
        provenance={"source": "synthetic, built by the tests", "method": "synthetic"},
        request={"method": "POST", "path": "/v1/responses", "body": body},
        headers={"content-type": "text/event-stream"},
        events=[
            Event(0.01 * i, f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n")
            for i, (kind, data) in enumerate(events)
        ],
    )
    with ReplayServer(speed=0, recordings=[rec]) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="test")
        received = list(client.responses.create(model="gpt-test", input=PROMPT, stream=True))
    assert [e.type for e in received] == [kind for kind, _ in events]
    assert received[1].delta == "1, 2"


def _error_of(response: httpx2.Response) -> dict:
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert "Traceback" not in response.text
    return error


def test_unknown_request_says_what_was_asked_and_what_to_do(server: ReplayServer) -> None:
    asked = {**CHAT_BODY, "temperature": 0.7}
    response = httpx2.post(server.base_url + "/chat/completions", json=asked)
    assert response.status_code == 404
    message = _error_of(response)["message"]
    assert "'gpt-test'" in message
    assert "Count to 5, with a comma" in message
    assert "python -m streamscope list" in message
    assert "STREAMSCOPE_BACKEND=openai" in message
    assert "OPENAI_API_KEY" in message
    assert "'test-count-to-5', differs in: temperature" in message


def test_unknown_request_raises_not_found_in_the_sdk(server: ReplayServer) -> None:
    client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
    with pytest.raises(openai.NotFoundError, match="python -m streamscope list"):
        client.chat.completions.create(**{**CHAT_BODY, "model": "gpt-other"})


@pytest.mark.parametrize(
    ("content", "fragment"), [(b"{not json", "not valid JSON"), (b"[1, 2]", "must be a JSON object")]
)
def test_malformed_body_is_a_400(server: ReplayServer, content: bytes, fragment: str) -> None:
    headers = {"content-type": "application/json"}
    response = httpx2.post(server.base_url + "/chat/completions", content=content, headers=headers)
    assert response.status_code == 400
    assert fragment in _error_of(response)["message"]


def test_wrong_path_is_a_404_and_wrong_method_a_405(server: ReplayServer) -> None:
    missing = httpx2.post(server.base_url + "/embeddings", json={"model": "m", "input": "x"})
    assert missing.status_code == 404
    assert "POST /v1/chat/completions" in _error_of(missing)["message"]
    wrong_method = httpx2.get(server.base_url + "/chat/completions")
    assert wrong_method.status_code == 405
    assert "GET /v1/chat/completions" in _error_of(wrong_method)["message"]
    assert wrong_method.headers["allow"] == "POST"


def test_bad_speed_header_is_a_400(server: ReplayServer) -> None:
    response = httpx2.post(
        server.base_url + "/chat/completions", json=CHAT_BODY, headers={SPEED_HEADER: "-1"}
    )
    assert response.status_code == 400
    assert "speed" in _error_of(response)["message"]


def test_client_disconnect_mid_stream_costs_nothing() -> None:
    # The stream's last events are minutes away: only a disconnect can end it early.
    offsets = [0.0, 0.0, *([600.0] * (len(WORDS) + 1))]
    rec = synthetic_chat_recording(offsets=offsets)
    threads_before = threading.active_count()
    with ReplayServer(speed=1, recordings=[rec]) as srv:
        with httpx2.stream("POST", srv.base_url + "/chat/completions", json=CHAT_BODY) as response:
            pieces = response.iter_raw()  # held: dropping it would close the connection at once
            assert next(pieces).startswith(b"data: ")
            assert srv.active_streams == 1
        deadline = time.monotonic() + 10
        while srv.active_streams and time.monotonic() < deadline:
            time.sleep(0.01)
        assert srv.active_streams == 0
        again = httpx2.post(srv.base_url + "/chat/completions", json=CHAT_BODY, headers={SPEED_HEADER: "0"})
        assert again.content == rec.sse_bytes()
        assert threading.active_count() == threads_before + 1  # the server's own thread
    assert threading.active_count() == threads_before


def test_events_recorded_at_one_moment_go_out_in_one_write() -> None:
    # Writes may merge several moments (all are due at once here), but never split one.
    offsets = [0.0, 0.0, 0.001, 0.001, 0.001, 0.002, 0.003, 0.003, 0.004, 0.005, 0.005, 0.006]
    entry = _Entry.of(synthetic_chat_recording(offsets=offsets))
    moment_ends = [
        end
        for i, end in enumerate(itertools.accumulate(map(len, entry.payloads)))
        if i + 1 == len(offsets) or offsets[i + 1] != offsets[i]
    ]

    async def writes(speed: float) -> list[bytes]:
        start = asyncio.get_running_loop().time()
        return [piece async for piece in _paced_events(entry, start, speed, _Stats())]

    pieces = asyncio.run(writes(1.0))
    assert b"".join(pieces) == b"".join(entry.payloads)
    assert set(itertools.accumulate(map(len, pieces))) <= set(moment_ends)
    assert asyncio.run(writes(0.0)) == [b"".join(entry.payloads)]


def test_the_schedule_starts_when_the_request_arrived() -> None:
    # A request that arrived long ago (as the server's protocol notes it in the scope) is
    # overdue in every event: all of them go out at once, in one write.
    rec = synthetic_chat_recording()
    app = create_app(RecordingIndex([rec]), speed=1.0)
    sent: list[dict] = []

    async def call() -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/chat/completions",
            "raw_path": b"/v1/chat/completions",
            "query_string": b"",
            "root_path": "",
            "headers": [(b"content-type", b"application/json")],
            "server": ("127.0.0.1", 1),
            "client": ("127.0.0.1", 2),
            ARRIVAL_KEY: asyncio.get_running_loop().time() - 1000,
        }
        messages = [{"type": "http.request", "body": json.dumps(CHAT_BODY).encode(), "more_body": False}]

        async def receive() -> dict:
            if messages:
                return messages.pop()
            await asyncio.Event().wait()  # no disconnect
            raise AssertionError

        async def send(message: dict) -> None:
            sent.append(message)

        await app(scope, receive, send)

    asyncio.run(call())
    bodies = [m["body"] for m in sent if m["type"] == "http.response.body" and m["body"]]
    assert bodies == [rec.sse_bytes()]


def test_accepted_connections_send_without_nagle_delay() -> None:
    # Nagle would hold a small write behind an unacknowledged one until the client's delayed ACK.
    offsets = [0.0, 0.0, *([600.0] * (len(WORDS) + 1))]
    srv = ReplayServer(speed=1, recordings=[synthetic_chat_recording(offsets=offsets)])
    with srv, httpx2.stream("POST", srv.base_url + "/chat/completions", json=CHAT_BODY) as response:
        pieces = response.iter_raw()
        next(pieces)
        assert srv._server is not None
        (connection,) = srv._server.server_state.connections
        sock = connection.transport.get_extra_info("socket")
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_only_loopback_hosts_count_as_loopback() -> None:
    def loopback(host: str) -> bool:
        return ReplayServer(recordings=[], host=host).loopback

    assert all(map(loopback, ["127.0.0.1", "127.0.0.2", "::1", "localhost"]))
    assert not any(map(loopback, ["0.0.0.0", "192.168.1.2", "example.test", "::"]))


def test_bad_speed_and_missing_folder_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="speed must be"):
        ReplayServer(speed=-2, recordings=[])
    with pytest.raises(ValueError, match="does not exist"):
        ReplayServer(recordings=tmp_path / "nowhere")


def test_a_recording_saved_while_serving_is_answered(tmp_path: Path) -> None:
    with ReplayServer(speed=0, recordings=tmp_path) as srv:
        assert httpx2.post(srv.base_url + "/chat/completions", json=CHAT_BODY).status_code == 404
        synthetic_chat_recording().save(tmp_path / "test-count-to-5.json")
        assert httpx2.post(srv.base_url + "/chat/completions", json=CHAT_BODY).status_code == 200


def test_a_request_lists_the_folder_only_when_it_changed_or_its_listing_is_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each request's lookup skips the listing of every file while the folder is unchanged, but a
    file added is seen at once and one rewritten in place within _RELIST_S."""
    synthetic_chat_recording().save(tmp_path / "test-count-to-5.json")
    index = RecordingIndex(tmp_path)
    listings = []
    listing = index._listing
    monkeypatch.setattr(index, "_listing", lambda: listings.append(1) or listing())
    path = streamscope.matching.api_path("/v1/chat/completions")
    for _ in range(5):
        assert index.find(path, CHAT_BODY) is not None
    assert listings == []
    other = {**CHAT_BODY, "temperature": 1}
    synthetic_chat_recording("test-other", body=other).save(tmp_path / "test-other.json")  # a new file
    assert index.find(path, other) is not None
    assert len(listings) == 1
    later = [0.5 + 0.01 * i for i in range(len(synthetic_chat_recording().events or []))]
    synthetic_chat_recording(offsets=later).save(tmp_path / "test-count-to-5.json")  # rewritten in place
    time.sleep(streamscope.replay.index._RELIST_S * 1.5)
    match = index.find(path, CHAT_BODY)
    assert len(listings) == 2
    assert match is not None and match.entry.offsets[0] == 0.5


def test_serve_command_listens_answers_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    synthetic_chat_recording().save(tmp_path / "test-count-to-5.json")
    command = [sys.executable, "-m", "streamscope", "serve", "--host", "127.0.0.1", "--port", "0"]
    command += ["--speed", "0", "--recordings", str(tmp_path)]
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "1 recordings" in line
        base_url = line.split(" on ", 1)[1].split(" ", 1)[0]
        assert base_url.startswith("http://127.0.0.1:")
        assert httpx2.post(base_url + "/chat/completions", json=CHAT_BODY).status_code == 200
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert "stopped" in out
    assert "Traceback" not in err


def test_serve_command_with_a_missing_folder_is_one_clear_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "streamscope", "serve", "--recordings", str(tmp_path / "nowhere")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "does not exist" in result.stderr
    assert "Traceback" not in result.stderr


# A request wrong in several ways at once is answered for the first, in the order the answer's
# steps run (replay.app): content type, body, speed header, fault header, the recording.
UNKNOWN = {**CHAT_BODY, "model": "gpt-none"}


def _post(
    server: ReplayServer, body: dict, headers: dict[str, str], content_type: str = "application/json"
) -> httpx2.Response:
    return httpx2.post(
        server.base_url + "/chat/completions", json=body, headers={**headers, "content-type": content_type}
    )


@pytest.mark.parametrize(
    ("content_type", "headers", "status", "fragment"),
    [
        (
            "text/plain",
            {SPEED_HEADER: "fast", FAULT_HEADER: "nonsense"},
            415,
            "content-type: application/json",
        ),
        ("application/json", {SPEED_HEADER: "fast", FAULT_HEADER: "nonsense"}, 400, f"Header {SPEED_HEADER}"),
        ("application/json", {FAULT_HEADER: "nonsense"}, 400, f"Header {FAULT_HEADER}: cannot read"),
    ],
)
def test_the_first_wrong_thing_answers(
    server: ReplayServer, content_type: str, headers: dict[str, str], status: int, fragment: str
) -> None:
    answer = _post(server, UNKNOWN, headers, content_type)  # no recording answers it either
    assert answer.status_code == status, answer.text
    assert fragment in answer.json()["error"]["message"]


def test_a_fault_on_a_request_no_recording_answers_is_the_404(server: ReplayServer) -> None:
    answer = _post(server, UNKNOWN, {FAULT_HEADER: "cut-after=2"})
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "recording_not_found"


def test_a_fault_on_a_non_streamed_recording_is_refused(server: ReplayServer) -> None:
    rec = synthetic_completion_recording()
    path = rec.path.removeprefix("/v1")
    answer = httpx2.post(
        server.base_url + path, json=rec.request["body"], headers={FAULT_HEADER: "cut-after=1"}
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["message"] == (
        f"Header {FAULT_HEADER}: {rec.name!r} is not a streamed response."
    )


def test_the_path_is_written_in_full_once_per_request(
    server: ReplayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = streamscope.matching.api_path

    def counted(path: str) -> streamscope.matching.ApiPath:
        calls.append(path)
        return real(path)

    for module in (streamscope.matching, streamscope.replay.app, streamscope.replay.index):
        monkeypatch.setattr(module, "api_path", counted)
    assert _post(server, CHAT_BODY, {}).status_code == 200
    assert calls == ["/v1/chat/completions"]
    calls.clear()
    assert _post(server, UNKNOWN, {}).status_code == 404  # its hint is made in the body worker's process
    assert calls == ["/v1/chat/completions"]
