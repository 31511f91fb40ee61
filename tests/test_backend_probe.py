"""A live backend that is not there, or not an API, is said in one line naming the URL.

Issue 16: with STREAMSCOPE_BACKEND naming a URL where nothing listens, the banner still said
"live ... server at URL" and the first create() ended in a 270-line traceback whose last line,
"APIConnectionError: Connection error.", named neither the URL nor a fix; a URL answering a web
page made create() return a str, for the next cell to fail on.
"""

from __future__ import annotations

import asyncio
import http.server
import socket
import threading
from collections.abc import Iterator

import openai
import pytest
import streamscope
import streamscope.errors
from streamscope.backends.probe import BackendAnswerError, BackendUnreachable
from streamscope.replay import ReplayServer
from synthetic_recordings import CHAT_BODY, synthetic_chat_recording

PAGE = b"<!DOCTYPE html><html><head><title>Welcome to nginx!</title></head><body>It works</body></html>"


@pytest.fixture
def nothing_listens() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


@pytest.fixture
def web_page() -> Iterator[str]:
    class Page(http.server.BaseHTTPRequestHandler):
        def answer(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.send_header("content-length", str(len(PAGE)))
            self.end_headers()
            self.wfile.write(PAGE)

        do_GET = do_POST = answer

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()
    server.server_close()


def test_the_banner_says_when_nothing_listens(nothing_listens: str) -> None:
    banner = str(streamscope.active_backend(nothing_listens))
    assert f"at {nothing_listens}: not reachable (connection refused)" in banner


def test_the_first_request_names_the_url_and_the_fix(nothing_listens: str) -> None:
    client = streamscope.client(nothing_listens, max_retries=0)
    with pytest.raises(BackendUnreachable) as info:
        client.chat.completions.create(**CHAT_BODY)
    error = info.value
    message = str(error)
    assert nothing_listens in message and "connection refused" in message and "STREAMSCOPE_BACKEND" in message
    assert "\n" not in message
    assert isinstance(error, openai.APIConnectionError)  # code that catches the SDK's error still does
    assert isinstance(error.__cause__, openai.APIConnectionError)
    assert error._render_traceback_() == [f"BackendUnreachable: {message}"]  # one line in a notebook


def test_the_async_client_too(nothing_listens: str) -> None:
    async def ask() -> None:
        async with streamscope.async_client(nothing_listens, max_retries=0) as client:
            await client.chat.completions.create(**CHAT_BODY)

    with pytest.raises(BackendUnreachable, match=r"Nothing answers at http://127\.0\.0\.1"):
        asyncio.run(ask())


def test_a_web_page_is_not_an_api(web_page: str) -> None:
    assert "not an OpenAI-compatible API (GET /models answered 200 with text/html)" in str(
        streamscope.active_backend(web_page)
    )
    client = streamscope.client(web_page, max_retries=0)
    with pytest.raises(BackendAnswerError, match=r"answered with text, not the API's JSON \('<!DOCTYPE"):
        client.chat.completions.create(**{**CHAT_BODY, "stream": False})
    with pytest.raises(BackendAnswerError, match="answered a streamed request with text/html"):
        client.chat.completions.create(**CHAT_BODY)
    with pytest.raises(BackendAnswerError) as info:
        client.chat.completions.create(**CHAT_BODY)
    assert info.value._render_traceback_() == [f"BackendAnswerError: {info.value}"]


def test_an_api_that_answers_is_used_as_it_is() -> None:
    with ReplayServer(speed=0, recordings=[synthetic_chat_recording()]) as srv:
        banner = str(streamscope.active_backend(srv.base_url))
        assert "not reachable" not in banner and "not an OpenAI" not in banner
        chunks = list(streamscope.client(srv.base_url).chat.completions.create(**CHAT_BODY))
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_every_streamscope_error_is_one_line_in_a_notebook() -> None:
    # A bad STREAMSCOPE_SPEED, say: the notebook shows the message, not the frames inside streamscope.
    with pytest.raises(streamscope.errors.BackendError) as info:
        streamscope.client(speed="fast")
    assert info.value._render_traceback_() == [f"BackendError: {info.value}"]


@pytest.mark.parametrize(
    "setting",
    [
        "http://[::1",  # ValueError from urlsplit before
        "http://a\x00b/v1",  # httpx2.InvalidURL at the probe
        "http://256.256.256.256/v1",  # httpx2.InvalidURL
        "http://" + "a" * 300 + "/v1",  # UnicodeError: a label over 63 characters
        "http://a..b/v1",  # UnicodeError: an empty label
        "http://ho st/v1",
        "http://host:99999",
    ],
)
def test_a_base_url_that_cannot_be_used_is_one_line(setting: str) -> None:
    with pytest.raises(streamscope.errors.BackendError, match="is not a usable base URL") as info:
        streamscope.active_backend(setting)
    assert "\n" not in str(info.value)


def test_a_password_in_the_url_is_not_shown(nothing_listens: str) -> None:
    with_password = nothing_listens.replace("http://", "http://user:s3cret@")
    banner = str(streamscope.active_backend(with_password))
    assert "s3cret" not in banner and "user:***@127.0.0.1" in banner
    with pytest.raises(BackendUnreachable) as info:
        streamscope.client(with_password, max_retries=0).chat.completions.create(**CHAT_BODY)
    assert "s3cret" not in str(info.value)
    with pytest.raises(streamscope.errors.BackendError) as bad:
        streamscope.active_backend("http://user:s3cret@host:99999")
    assert "s3cret" not in str(bad.value)
