"""The ``local`` backend: its models, its one-line errors, and its server's life cycle.

The server tests need the optional extra and the models (``make local``) and are skipped,
with that command, without them.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from streamscope.backends import local, switch
from streamscope.backends.local import build
from streamscope.backends.local import models as local_models
from streamscope.backends.local import server as local_server
from streamscope.errors import BackendError


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("STREAMSCOPE_BACKEND", "STREAMSCOPE_MODEL", local.PORT_ENV):
        monkeypatch.delenv(name, raising=False)


needs_server = pytest.mark.skipif(local.unavailable() is not None, reason=str(local.unavailable()))


def test_published_model_constants_are_consistent() -> None:
    for model in local.MODELS:
        assert len(model.sha256) == 64 and int(model.sha256, 16) >= 0
        assert model.size > 50_000_000 and model.parts and model.published


def test_missing_server_names_the_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(build.SERVER_DIR_ENV, str(tmp_path))
    with pytest.raises(
        local.LocalServerError, match=r"llama-server .* is not built yet: run make local-install"
    ):
        local.server_build()


def test_missing_model_names_the_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(local.MODELS_DIR_ENV, str(tmp_path))
    with pytest.raises(local.LocalServerError, match=r"run python -m streamscope models$"):
        local.model_path(local.MODELS[0])
    # A file of the right size but never checked against the published sha256 is not used either.
    path = tmp_path / local.MODELS[0].file_name
    with path.open("wb") as f:
        f.truncate(local.MODELS[0].size)
    with pytest.raises(local.LocalServerError, match="not verified"):
        local.model_path(local.MODELS[0])


def test_a_notebook_shows_the_error_as_one_line() -> None:
    error = local.LocalServerError("the local model is missing: run python -m streamscope models")
    assert error._render_traceback_() == [f"LocalServerError: {error}"]


def test_busy_port_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        monkeypatch.setenv(local.PORT_ENV, str(taken.getsockname()[1]))
        with pytest.raises(local.LocalServerError, match=f"port {taken.getsockname()[1]} .* is busy"):
            local_server._port()
    monkeypatch.setenv(local.PORT_ENV, "eighty")
    with pytest.raises(local.LocalServerError, match="not a port number"):
        local_server._port()


def test_backend_setting_names_local() -> None:
    assert switch.resolve("local") == ("local", None)
    with pytest.raises(BackendError, match='"local" \\(a model on this CPU\\)'):
        switch.resolve("nowhere")


@needs_server
def test_server_dies_at_start_in_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Model files of the right size, marked verified, holding zeros: llama.cpp refuses to load them,
    # and the start failure hashes them again and names the damaged file.
    monkeypatch.setenv(local.MODELS_DIR_ENV, str(tmp_path / "models"))
    (tmp_path / "models").mkdir()
    for model in local.MODELS:
        path = tmp_path / "models" / model.file_name
        with path.open("wb") as f:
            f.truncate(model.size)
        local_models._stamp(path).write_text(
            json.dumps({"sha256": model.sha256, "mtime_ns": path.stat().st_mtime_ns})
        )
    with pytest.raises(local.LocalServerError) as caught:
        local.LocalServer().start()
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("the local server model ") and "failed to load" in message
    assert "is damaged" in message and message.endswith("run python -m streamscope models")


def _client(server: local.LocalServer):
    import openai

    return openai.OpenAI(base_url=server.base_url, api_key="none", max_retries=0)


@needs_server
def test_server_answers_and_stops() -> None:
    server = local.LocalServer().start()
    try:
        assert {m.id for m in _client(server).models.list()} == {local.CHAT_MODEL, local.COMPLETION_MODEL}
        assert server.banner.startswith(f"llama-server (llama.cpp b10605) at {server.base_url}")
        assert server.banner.endswith("live")
    finally:
        server.stop()
    assert server.process is not None and server.process.poll() is not None
    assert not server.run_dir.exists()


@needs_server
def test_tool_choice_required_streams_a_real_tool_call_and_plain_chat_keeps_its_schema() -> None:
    weather = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
    server = local.LocalServer().start()
    try:
        client = _client(server)
        stream = client.chat.completions.create(
            model=local.CHAT_MODEL,
            messages=[{"role": "user", "content": "What is the weather like in Paris today?"}],
            tools=[weather],
            tool_choice="required",
            temperature=0,
            max_tokens=48,
            stream=True,
        )
        deltas = [d for chunk in stream if chunk.choices for d in chunk.choices[0].delta.tool_calls or []]
        assert deltas[0].id and deltas[0].function.name == "get_weather"
        assert not any(d.id or d.function.name for d in deltas[1:])
        assert "city" in json.loads("".join(d.function.arguments or "" for d in deltas))
        # Without tools the model's own template serves, and a JSON schema's grammar still holds.
        reply = client.chat.completions.create(
            model=local.CHAT_MODEL,
            messages=[{"role": "user", "content": "Name a city."}],
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "c", "schema": weather["function"]["parameters"]},
            },
            temperature=0,
            max_tokens=40,
        )
        assert "city" in json.loads(reply.choices[0].message.content or "")
    finally:
        server.stop()


@needs_server
def test_two_servers_start_at_once_and_stop_apart() -> None:
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        first, second = pool.map(lambda _: local.LocalServer().start(), range(2))
    try:
        assert first.port != second.port
        first.stop()
        reply = _client(second).completions.create(
            model=local.COMPLETION_MODEL, prompt="1,2,3,", max_tokens=4
        )
        assert reply.choices[0].text
    finally:
        first.stop()
        second.stop()


@needs_server
def test_a_taken_port_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setattr(local_server, "_port", lambda: port)
        with pytest.raises(local.LocalServerError, match=f"port {port} on 127.0.0.1 was taken"):
            local.LocalServer().start()


_PARENT = textwrap.dedent(
    """
    import time
    from streamscope.backends.registry import shared_local_server
    server = shared_local_server()
    print(server.process.pid, flush=True)
    time.sleep(600)
    """
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its new parent) counts as gone.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(") ", 1)[1][0] != "Z"


@needs_server
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_no_orphan_after_the_parent_is_killed() -> None:
    parent = subprocess.Popen([sys.executable, "-c", _PARENT], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert _alive(child)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = _alive(child)
    if alive:
        os.kill(child, signal.SIGKILL)
    assert not alive, f"the local server (pid {child}) outlived its killed parent"
