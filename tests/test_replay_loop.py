"""The replay server's loop cannot be starved: many idle connections, huge bodies, a folder being written.

No test here asserts a duration (benchmarks/replay.py measures the schedule under each attack);
each checks the mechanism instead: the server answers with more connections open than select()
can watch, a body too costly to parse in the loop is parsed in another process, and a recording
saved beside others makes the server read that file alone.
"""

from __future__ import annotations

import json
import resource
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest
import streamscope.recording
import streamscope.replay.app
from streamscope.replay import ReplayServer
from synthetic_recordings import CHAT_BODY, synthetic_chat_recording

CHAT = "/chat/completions"
IDLE = 1100  # select() cannot watch a descriptor numbered 1024 or more


@pytest.fixture
def descriptors():
    """Room for IDLE connections at both ends (the server runs in this process)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 2 * IDLE + 512
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"the open-file limit ({hard}) cannot hold {IDLE} connections at both ends")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_more_idle_connections_than_select_can_watch(descriptors) -> None:
    # Issue 16: 1,100 idle connections killed it (ValueError: filedescriptor out of range in select()).
    with ReplayServer(speed=0, recordings=[synthetic_chat_recording()]) as srv:
        idle = [socket.create_connection(("127.0.0.1", srv.port), timeout=10) for _ in range(IDLE)]
        try:
            with httpx2.Client(timeout=30) as http:
                for _ in range(3):
                    answer = http.post(srv.base_url + CHAT, json=CHAT_BODY)
                    assert answer.status_code == 200 and answer.content.endswith(b"data: [DONE]\n\n")
        finally:
            for connection in idle:
                connection.close()


def test_saving_a_recording_reads_that_file_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Issue 16: every save re-read the whole folder in the loop (about 1 s beside a 50 MB recording).
    synthetic_chat_recording().save(tmp_path / "big.json")
    read: list[str] = []
    real_load = streamscope.recording.Recording.load.__func__

    def counted(cls, path):
        read.append(Path(path).name)
        return real_load(cls, path)

    monkeypatch.setattr(streamscope.recording.Recording, "load", classmethod(counted))
    other = {**CHAT_BODY, "temperature": 0.5}
    with ReplayServer(speed=0, recordings=tmp_path) as srv:
        assert httpx2.post(srv.base_url + CHAT, json=CHAT_BODY).status_code == 200
        assert read == ["big.json"]
        synthetic_chat_recording(name="new", body=other).save(tmp_path / "new.json")
        assert httpx2.post(srv.base_url + CHAT, json=other).status_code == 200
        assert httpx2.post(srv.base_url + CHAT, json=CHAT_BODY).status_code == 200
        assert read == ["big.json", "new.json"]
        (tmp_path / "new.json").unlink()
        assert httpx2.post(srv.base_url + CHAT, json=other).status_code == 404
    assert read == ["big.json", "new.json"]


def test_an_unchanged_folder_is_not_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synthetic_chat_recording().save(tmp_path / "a.json")
    read: list[str] = []
    real_load = streamscope.recording.Recording.load.__func__
    monkeypatch.setattr(
        streamscope.recording.Recording,
        "load",
        classmethod(lambda cls, path: read.append(Path(path).name) or real_load(cls, path)),
    )
    with ReplayServer(speed=0, recordings=tmp_path) as srv:
        for _ in range(3):
            assert httpx2.post(srv.base_url + CHAT, json=CHAT_BODY).status_code == 200
    assert read == ["a.json"]


@pytest.fixture
def parsed_here(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the bodies this process (the server's loop) parses; the worker's are not seen."""
    sizes: list[int] = []
    real = streamscope.replay.app._parse_body

    def noted(raw: bytes, path: str):
        sizes.append(len(raw))
        return real(raw, path)

    monkeypatch.setattr(streamscope.replay.app, "_parse_body", noted)
    return sizes


def test_a_costly_body_is_read_outside_the_loop(parsed_here: list[int]) -> None:
    # Issue 16: 300,000 keys under the 4 MiB limit took seconds to answer, and every stream waited.
    keys = ",".join(f'"k{i}":0' for i in range(300_000))
    hostile = ('{"model":"gpt-test","messages":[],' + keys + "}").encode()
    with ReplayServer(speed=0, recordings=[synthetic_chat_recording()]) as srv:
        answer = httpx2.post(
            srv.base_url + CHAT, content=hostile, headers={"content-type": "application/json"}, timeout=120
        )
        assert answer.status_code == 404
        message = answer.json()["error"]["message"]
        assert "'test-count-to-5'" in message and "python -m streamscope list" in message
        assert httpx2.post(srv.base_url + CHAT, json=CHAT_BODY).status_code == 200
    assert parsed_here and max(parsed_here) < 65536


def test_a_large_request_a_recording_answers_is_answered(parsed_here: list[int]) -> None:
    body = {**CHAT_BODY, "messages": [{"role": "user", "content": "1, 2, 3, " * 20_000}]}
    rec = synthetic_chat_recording(name="long-prompt", body=body)
    with ReplayServer(speed=0, recordings=[rec, synthetic_chat_recording()]) as srv:
        answer = httpx2.post(srv.base_url + CHAT, json=body, timeout=60)
        assert answer.status_code == 200 and answer.content == rec.sse_bytes()
        assert (
            httpx2.post(srv.base_url + CHAT, json=CHAT_BODY).content == synthetic_chat_recording().sse_bytes()
        )
    assert max(parsed_here) < 65536  # 180 kB of prompt: read in the worker


def test_a_small_request_is_answered_in_the_loop(parsed_here: list[int]) -> None:
    with ReplayServer(speed=0, recordings=[synthetic_chat_recording()]) as srv:
        assert httpx2.post(srv.base_url + CHAT, json=CHAT_BODY).status_code == 200
    assert len(parsed_here) == 1 and parsed_here[0] < len(json.dumps(CHAT_BODY)) + 20


def test_serve_ends_with_its_worker_on_sigterm() -> None:
    # The worker once outlived `serve` (uvicorn raises SIGTERM again after its shutdown), holding the
    # server's stdout and stderr open, and multiprocessing warned of leaked semaphores.
    command = [sys.executable, "-m", "streamscope", "serve", "--port", "0", "--speed", "0"]
    serve = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert serve.stdout is not None
        base_url = serve.stdout.readline().split(" on ", 1)[1].split(" ", 1)[0]
        costly = ('{"model":"m",' + ",".join(f'"k{i}":0' for i in range(20_000)) + "}").encode()
        answer = httpx2.post(
            base_url + CHAT, content=costly, headers={"content-type": "application/json"}, timeout=60
        )
        assert answer.status_code == 404
        serve.send_signal(signal.SIGTERM)
        _, err = serve.communicate(timeout=30)  # stdout and stderr close: no process holds them
    finally:
        serve.kill()
    assert "Traceback" not in err and "leaked" not in err, err


def test_running_out_of_descriptors_is_said_once_and_passes() -> None:
    # asyncio logged a traceback per waiting connection (47,000 lines for 400 connections over a
    # limit of 256), the server hardly answering meanwhile.
    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    command = [sys.executable, "-m", "streamscope", "serve", "--port", "0", "--speed", "0"]
    serve = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=low_limit
    )
    try:
        assert serve.stdout is not None
        base_url = serve.stdout.readline().split(" on ", 1)[1].split(" ", 1)[0]
        port = int(base_url.rsplit(":", 1)[1].split("/", 1)[0])
        idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(400)]
        for connection in idle:
            connection.close()
        answer = httpx2.post(base_url + CHAT, json=CHAT_BODY, timeout=30)
        assert answer.status_code == 404  # the package's recordings: not the synthetic one
        serve.send_signal(signal.SIGTERM)
        _, err = serve.communicate(timeout=30)
    finally:
        serve.kill()
    assert err.splitlines() == [
        "streamscope replay server: every file descriptor is in use (256, the open-file limit); "
        "new connections wait until others close (`ulimit -n` raises the limit)"
    ]
