"""streamscope.client(), async_client() and active_backend(): the switch between replay and live."""

from __future__ import annotations

import asyncio

import httpx2
import openai
import pytest
import streamscope
from streamscope.backends.registry import shared_replay_server
from streamscope.backends.switch import PLACEHOLDER_KEY
from streamscope.errors import BackendError
from streamscope.recording import Recording, iter_recordings
from streamscope.replay import SPEED_HEADER


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("STREAMSCOPE_BACKEND", "STREAMSCOPE_SPEED", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def test_default_is_the_shared_replay_server() -> None:
    active = streamscope.active_backend()
    assert active.kind == "replay"
    assert active.base_url == shared_replay_server().base_url
    assert active.base_url.startswith("http://127.0.0.1:")
    assert active.speed == 1
    client = streamscope.client()
    assert isinstance(client, openai.OpenAI)
    assert str(client.base_url).rstrip("/") == active.base_url
    assert streamscope.client().base_url == client.base_url  # one server for all clients
    banner = str(active)
    assert banner.startswith("streamscope backend: replay of recorded streams at http://127.0.0.1:")
    assert "speed 1" in banner
    assert "STREAMSCOPE_BACKEND=openai" in banner


def test_speed_travels_with_each_request(monkeypatch: pytest.MonkeyPatch) -> None:
    assert streamscope.client(speed=0).default_headers[SPEED_HEADER] == "0.0"
    monkeypatch.setenv("STREAMSCOPE_SPEED", "2.5")
    assert streamscope.active_backend().speed == 2.5
    assert streamscope.async_client().default_headers[SPEED_HEADER] == "2.5"


def test_replay_client_gets_the_servers_clear_error() -> None:
    client = streamscope.client(speed=0, max_retries=0)
    with pytest.raises(openai.NotFoundError, match="python -m streamscope list"):
        client.chat.completions.create(
            model="gpt-none", messages=[{"role": "user", "content": "never recorded"}], stream=True
        )


def _replayable() -> list[Recording]:
    return [r for r in iter_recordings() if r.streamed and r.status == 200]


def test_every_packaged_stream_replays_byte_for_byte_through_the_sdk_clients() -> None:
    recordings = _replayable()
    if not recordings:
        pytest.skip("the package has no streamed recordings yet")

    async def replay_async(rec: Recording) -> bytes:
        async with streamscope.async_client(speed=0) as aclient:
            body = rec.request["body"]
            response = await aclient.post(rec.path.removeprefix("/v1"), body=body, cast_to=httpx2.Response)
            return response.content

    client = streamscope.client(speed=0)
    for rec in recordings:
        response = client.post(
            rec.path.removeprefix("/v1"), body=rec.request["body"], cast_to=httpx2.Response
        )
        assert response.content == rec.sse_bytes(), rec.name
        assert asyncio.run(replay_async(rec)) == rec.sse_bytes(), rec.name


def test_openai_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(BackendError, match="set OPENAI_API_KEY"):
        streamscope.client("openai")
    monkeypatch.setenv("STREAMSCOPE_BACKEND", "openai")
    with pytest.raises(BackendError, match="set OPENAI_API_KEY"):
        streamscope.active_backend()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-key")
    client = streamscope.client()
    assert str(client.base_url) == "https://api.openai.com/v1/"
    assert client.api_key == "sk-test-not-a-key"
    assert SPEED_HEADER not in client.default_headers
    assert str(streamscope.active_backend()).startswith("streamscope backend: live OpenAI API")


@pytest.mark.parametrize(
    ("setting", "base_url"),
    [
        ("http://localhost:11434/v1", "http://localhost:11434/v1"),
        ("http://localhost:11434", "http://localhost:11434/v1"),
        ("http://127.0.0.1:8000/v1/", "http://127.0.0.1:8000/v1"),
        ("https://example.test/openai/v1", "https://example.test/openai/v1"),
    ],
)
def test_a_base_url_goes_to_that_server(monkeypatch: pytest.MonkeyPatch, setting: str, base_url: str) -> None:
    monkeypatch.setenv("STREAMSCOPE_BACKEND", setting)
    active = streamscope.active_backend()
    assert (active.kind, active.base_url) == ("url", base_url)
    client = streamscope.client()
    assert str(client.base_url).rstrip("/") == base_url
    assert client.api_key == PLACEHOLDER_KEY
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local")
    assert streamscope.async_client().api_key == "sk-local"


@pytest.mark.parametrize(
    ("setting", "fragment"),
    [
        ("openia", "is not a backend"),
        ("localhost:11434", "is not a backend"),
        ("http://", "is not a usable base URL"),
        ("ftp://example.test/v1", "is not a usable base URL"),
        ("http://localhost:99999/v1", "is not a usable base URL"),
    ],
)
def test_bad_backend_settings_are_clear_errors(setting: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        streamscope.client(setting)


def test_bad_speeds_are_clear_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="speed must be"):
        streamscope.client(speed=-1)
    monkeypatch.setenv("STREAMSCOPE_SPEED", "fast")
    with pytest.raises(ValueError, match="STREAMSCOPE_SPEED='fast'"):
        streamscope.active_backend()


def test_base_url_argument_is_refused() -> None:
    with pytest.raises(TypeError, match="backend="):
        streamscope.client(base_url="http://localhost:1/v1")
