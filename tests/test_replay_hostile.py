"""The replay server under hostile input: every request gets an OpenAI-shaped answer, and it keeps serving.

Everything goes through HTTP (httpx2, or a raw socket where a client library would refuse to
send it) and the command line. No test asserts a duration: the fuzz test checks that a paced
stream running beside the attack still arrives complete and in order.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from streamscope.replay import ENDPOINTS, SENT_LOG_PATH, ReplayServer
from synthetic_recordings import CHAT_BODY, synthetic_chat_recording, synthetic_completion_recording

CHAT = "/chat/completions"
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def server():
    with ReplayServer(speed=0, recordings=[synthetic_chat_recording()]) as srv:
        yield srv


def error_of(response: httpx2.Response) -> dict:
    """The OpenAI error object of a response, checked for shape and a bounded, useful message."""
    assert response.headers["content-type"].startswith("application/json"), response.text[:200]
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str)
    assert 20 < len(error["message"]) <= 2000
    assert "Traceback" not in response.text
    return error


def post(server: ReplayServer, content: bytes, **headers: str) -> httpx2.Response:
    headers = {"content-type": "application/json", **headers}
    return httpx2.post(server.base_url + CHAT, content=content, headers=headers, timeout=60)


# --- size ------------------------------------------------------------------------------------


def test_a_body_over_the_limit_is_a_413(server: ReplayServer) -> None:
    response = post(server, b'{"model": "' + b"x" * (5 * MiB) + b'"}')
    assert response.status_code == 413
    assert "MiB" in error_of(response)["message"]


def test_a_chunked_body_over_the_limit_is_a_413(server: ReplayServer) -> None:
    pieces = (b"[" + b"1," * 32768 for _ in range(100))  # no content-length: chunked, 6.5 MB
    response = httpx2.post(
        server.base_url + CHAT, content=pieces, headers={"content-type": "application/json"}, timeout=60
    )
    assert response.status_code == 413
    error_of(response)


def test_a_huge_prompt_is_not_echoed_back(server: ReplayServer) -> None:
    word = "w" * MiB
    body = {**CHAT_BODY, "model": "m" * 100_000, "messages": [{"role": "user", "content": word}]}
    response = post(server, json.dumps(body).encode())
    assert response.status_code == 404
    message = error_of(response)["message"]
    assert "python -m streamscope list" in message


# --- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested"),
        (b'{"model": ' + b"7" * 5000 + b"}", "digits"),
        (b'{"\\ud800": 1}', "surrogate"),
        (b'{"model": "gpt-test", "messages": [{"role": "user", "content": "\\udfff"}]}', "surrogate"),
        (b'{"model": "\xff"}', "UTF-8"),
        (b"", "not valid JSON"),
        (b'"a string"', "JSON object"),
        (b"NaN", "JSON object"),
    ],
)
def test_every_parse_failure_is_an_openai_shaped_400(
    server: ReplayServer, content: bytes, fragment: str
) -> None:
    response = post(server, content)
    assert response.status_code == 400, response.text[:200]
    assert fragment in error_of(response)["message"]


@pytest.mark.parametrize("depth", [200, 900, 990])
def test_a_body_nested_deep_but_readable_gets_an_openai_shaped_answer(
    server: ReplayServer, depth: int
) -> None:
    # Python's JSON reader goes about 1000 levels deep; what it reads may still be too deep to compare.
    response = post(server, b'{"model": ' + b"[" * depth + b"1" + b"]" * depth + b', "messages": []}')
    assert response.status_code in (400, 404)
    error_of(response)


def test_a_malformed_http_request_gets_an_openai_shaped_400(server: ReplayServer) -> None:
    status, headers, body = raw_exchange(
        server, b"POST /v1/chat/completions HTTP/1.1\r\nno colon here\r\n\r\n"
    )
    assert status == 400
    assert headers["content-type"].startswith("application/json")
    assert set(json.loads(body)["error"]) == {"message", "type", "param", "code"}


# --- who may ask -----------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_only_json_bodies_are_accepted(server: ReplayServer, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = httpx2.post(server.base_url + CHAT, content=json.dumps(CHAT_BODY).encode(), headers=headers)
    assert response.status_code == 415
    assert "application/json" in error_of(response)["message"]
    charset = post(
        server, json.dumps(CHAT_BODY).encode(), **{"content-type": "application/json; charset=utf-8"}
    )
    assert charset.status_code == 200


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:1234", "127.0.0.1.evil.example", "localhost.evil"]
)
def test_only_loopback_host_values_are_answered(server: ReplayServer, host: str) -> None:
    response = post(server, json.dumps(CHAT_BODY).encode(), host=host)
    assert response.status_code == 421
    assert "Host" in error_of(response)["message"]
    sent = httpx2.get(server.base_url.removesuffix("/v1") + "/streamscope/sent", headers={"host": host})
    assert sent.status_code == 421


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "127.0.0.2:9", "[::1]:80", "LOCALHOST:1"])
def test_loopback_host_values_are_answered(server: ReplayServer, host: str) -> None:
    assert post(server, json.dumps(CHAT_BODY).encode(), host=host).status_code == 200


# --- slow clients ----------------------------------------------------------------------------


def raw_exchange(server: ReplayServer, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read until the server closes; the response's status, headers and body."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(data)
        received = b""
        while piece := sock.recv(65536):
            received += piece
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    return int(status_line.split()[1]), headers, body


@pytest.fixture(scope="module")
def impatient():
    with ReplayServer(speed=0, recordings=[synthetic_chat_recording()], request_timeout=0.3) as srv:
        yield srv


@pytest.mark.parametrize(
    "partial",
    [
        b"",
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n",
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        b"content-length: 100\r\n\r\n{",
    ],
    ids=["nothing", "half a head", "half a body"],
)
def test_a_request_that_does_not_arrive_in_time_is_a_408(impatient: ReplayServer, partial: bytes) -> None:
    status, _, body = raw_exchange(impatient, partial)  # the server closes: no client timeout here
    assert status == 408
    assert set(json.loads(body)["error"]) == {"message", "type", "param", "code"}
    # and the server still answers the next, whole request
    assert httpx2.post(impatient.base_url + CHAT, json=CHAT_BODY).status_code == 200


# --- bad recording files ---------------------------------------------------------------------


def recordings_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "recordings"
    folder.mkdir()
    synthetic_chat_recording().save(folder / "test-count-to-5.json")
    text = synthetic_completion_recording().dumps()
    (folder / "half-written.json").write_text(text[: len(text) // 2])
    shutil.copy(folder / "test-count-to-5.json", folder / "test-count-to-5-copy.json")
    return folder


def test_bad_recording_files_are_reported_once_and_skipped(tmp_path: Path, capfd) -> None:
    folder = recordings_folder(tmp_path)
    with ReplayServer(speed=0, recordings=folder) as srv:
        for _ in range(2):
            assert httpx2.post(srv.base_url + CHAT, json=CHAT_BODY).status_code == 200
        missing = httpx2.post(srv.base_url + "/completions", json={"model": "gpt-test", "prompt": "1, 2,"})
        assert missing.status_code == 404
        assert "half-written.json" in error_of(missing)["message"]
        (folder / "later.json").write_text("{")
        assert httpx2.post(srv.base_url + CHAT, json=CHAT_BODY).status_code == 200
        assert httpx2.post(srv.base_url + CHAT, json=CHAT_BODY).status_code == 200
    err = capfd.readouterr().err
    assert err.count("half-written.json") == 1
    assert err.count("test-count-to-5-copy.json") == 1
    assert err.count("later.json") == 1
    assert "Traceback" not in err


def test_list_and_serve_report_bad_recording_files(tmp_path: Path) -> None:
    folder = recordings_folder(tmp_path)
    listed = subprocess.run(
        [sys.executable, "-m", "streamscope", "list", "--recordings", str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 1
    assert listed.stdout.splitlines()[0].startswith("test-count-to-5\t")
    assert len(listed.stdout.splitlines()) == 1
    assert "half-written.json" in listed.stderr
    assert "test-count-to-5-copy.json" in listed.stderr
    assert "Traceback" not in listed.stderr
    command = [sys.executable, "-m", "streamscope", "serve", "--speed", "0", "--recordings", str(folder)]
    serve = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert serve.stdout is not None
        line = serve.stdout.readline()
        assert "1 recordings, 2 files skipped" in line
        base_url = line.split(" on ", 1)[1].split(" ", 1)[0]
        assert httpx2.post(base_url + CHAT, json=CHAT_BODY).status_code == 200
        serve.send_signal(signal.SIGINT)
        _, err = serve.communicate(timeout=20)
    finally:
        serve.kill()
    assert err.count("half-written.json") == 1
    assert err.count("test-count-to-5-copy.json") == 1


# --- fuzz ------------------------------------------------------------------------------------

# Text of any code point, lone surrogates included (json.dumps escapes them as \udXXX).
any_text = st.text(st.characters(exclude_categories=()), max_size=20)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | any_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4),
    max_leaves=20,
)
# A body is arbitrary bytes, arbitrary JSON, a request-shaped object with arbitrary values in its
# fields, or one of the shapes that once broke the server, at arbitrary sizes.
bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {"model": json_values, "messages": json_values}, optional={"stream": json_values}
    ).map(lambda v: json.dumps(v).encode()),
    st.integers(1, 3000).map(lambda n: b'{"messages": ' + b"[" * n + b"]" * n + b"}"),
    st.integers(4000, 6000).map(lambda n: b'{"model": ' + b"9" * n + b"}"),
)
# Half the requests are JSON POSTs to an endpoint, so that most bodies reach the parser; the
# rest go anywhere, any way.
methods = st.just("POST") | st.sampled_from(["GET", "PUT", "DELETE", "PATCH", "OPTIONS"])
paths = st.sampled_from(ENDPOINTS) | (
    st.sampled_from([SENT_LOG_PATH, "/v1/models", "/"])
    | st.text(
        st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="#?%"), max_size=30
    ).map(lambda p: "/" + p)
)
tokens = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=20)
content_types = (
    st.just("application/json") | st.sampled_from(["text/plain", "application/json; charset=utf-8"]) | tokens
)


class PacedStreams(threading.Thread):
    """Replays the paced recording again and again beside the attack, keeping what arrived."""

    def __init__(self, base_url: str) -> None:
        super().__init__(daemon=True)
        self.base_url, self.bodies, self.stop = base_url, [], threading.Event()

    def run(self) -> None:
        with httpx2.Client(timeout=60) as http:
            while True:
                with http.stream("POST", self.base_url + CHAT, json=CHAT_BODY) as response:
                    self.bodies.append((response.status_code, b"".join(response.iter_raw())))
                if self.stop.is_set():
                    return


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


def test_fuzz_every_endpoint_while_a_paced_stream_runs() -> None:
    offsets = [0.002 * i for i in range(12)]  # 12 events over 22 ms, at speed 1
    recording = synthetic_chat_recording(offsets=offsets)
    with ReplayServer(speed=1, recordings=[recording]) as srv, httpx2.Client(timeout=60) as http:
        streams = PacedStreams(srv.base_url)
        streams.start()

        @FUZZ
        @given(
            method=methods,
            path=paths,
            content_type=content_types,
            body=bodies,
        )
        def requests(method: str, path: str, content_type: str, body: bytes) -> None:
            url = f"http://127.0.0.1:{srv.port}{path}"
            response = http.request(method, url, content=body, headers={"content-type": content_type})
            if response.status_code == 200:  # only the sent log answers 200: no fuzzed body is recorded
                assert (method, path) == ("GET", "/streamscope/sent")
                assert isinstance(response.json()["data"], list)
                return
            assert 400 <= response.status_code < 500, response.text[:200]
            error_of(response)

        @FUZZ
        @given(
            data=st.binary(max_size=400) | st.binary(max_size=200).map(lambda b: b"POST / HTTP/1.1\r\n" + b)
        )
        def raw_bytes(data: bytes) -> None:
            with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as sock:
                sock.sendall(data)
                sock.shutdown(socket.SHUT_WR)  # the server sees the end: no waiting for its timeout
                received = b""
                while piece := sock.recv(65536):
                    received += piece
            if received:  # an answer, if any, is an OpenAI error; else the server just closed
                head, _, body = received.partition(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 4"), received[:200]
                assert b"content-type: application/json" in head.lower()
                assert set(json.loads(body)["error"]) == {"message", "type", "param", "code"}

        try:
            requests()
            raw_bytes()
        finally:
            streams.stop.set()
            streams.join(timeout=60)
        # Served on schedule: every paced stream beside the attack arrived whole, in order, and the
        # server's own log says it sent every event of each.
        assert streams.bodies
        assert all(body == (200, recording.sse_bytes()) for body in streams.bodies)
        answered = [r for r in srv.sent if r["recording"] == recording.name]
        assert len(answered) == len(streams.bodies)
        assert all(r["state"] == "complete" and r["events_sent"] == len(offsets) for r in answered)
