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
import streamscope
from streamscope.backends import local, registry, switch
from streamscope.backends.local import models as local_models
from streamscope.backends.local import server as local_server
from streamscope.errors import BackendError


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("STREAMSCOPE_BACKEND", "STREAMSCOPE_MODEL", local.PORT_ENV):
        monkeypatch.delenv(name, raising=False)


needs_server = pytest.mark.skipif(local.unavailable() is not None, reason=str(local.unavailable()))


def test_model_names_map_to_the_local_model_for_their_endpoint() -> None:
    assert local.model_for("gpt-3.5-turbo") == local.CHAT_MODEL == "smollm2-135m-instruct"
    assert local.model_for("gpt-4o-mini") == local.CHAT_MODEL
    assert local.model_for("text-davinci-002") == local.COMPLETION_MODEL == "gemma-3-270m"
    assert local.model_for("gpt-3.5-turbo-instruct") == local.COMPLETION_MODEL


class _Server:
    def __init__(self) -> None:
        self.loaded: list[str] = []

    def load(self, alias: str) -> None:
        self.loaded.append(alias)

    def stop(self) -> None:
        pass


def test_model_on_local_names_and_loads_the_model(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    server = _Server()
    registry.use("local", server)
    request.addfinalizer(lambda: registry.reset("local"))
    monkeypatch.setenv("STREAMSCOPE_BACKEND", "local")
    assert streamscope.model("gpt-3.5-turbo", live="gpt-4o-mini") == local.CHAT_MODEL
    assert streamscope.model("text-davinci-002", live="gpt-3.5-turbo-instruct") == local.COMPLETION_MODEL
    assert server.loaded == [local.CHAT_MODEL, local.COMPLETION_MODEL]
    monkeypatch.setenv("STREAMSCOPE_MODEL", "mine")
    assert streamscope.model("gpt-3.5-turbo") == "mine"


def test_published_model_constants_are_consistent() -> None:
    for model in local.MODELS:
        assert len(model.sha256) == 64 and int(model.sha256, 16) >= 0
        assert model.size > 50_000_000 and model.parts and model.published


def test_missing_extra_names_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    find_spec = local_server.importlib.util.find_spec
    monkeypatch.setattr(
        local_server.importlib.util, "find_spec", lambda n: None if n == "llama_cpp" else find_spec(n)
    )
    with pytest.raises(local.LocalServerError, match=r"\(missing: llama_cpp\b.*\): run make local"):
        local.server_version()


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
    # Model files of the right size, marked verified, holding zeros: llama.cpp refuses to load them.
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
    assert message.startswith("the local server exited at start (code 1): ")
    assert "run make local" in message


@needs_server
def test_server_answers_and_stops() -> None:
    server = local.LocalServer().start()
    try:
        import openai

        client = openai.OpenAI(base_url=server.base_url, api_key="none", max_retries=0)
        assert {m.id for m in client.models.list()} == {local.CHAT_MODEL, local.COMPLETION_MODEL}
        assert server.banner.startswith(f"llama-cpp-python {server.version} server at {server.base_url}")
        assert server.banner.endswith("live")
    finally:
        server.stop()
    assert server.process is not None and server.process.poll() is not None


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
