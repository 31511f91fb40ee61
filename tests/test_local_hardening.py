"""The local backend against careless and hostile settings (issue 16 §5): bad ports, an unwritable
model cache, model files damaged in place, two servers at once, and start failures that must name
their real cause. A stand-in "server" (a shell script) plays each failure, so none of these needs
the real llama-server or the models; the ones that do are in test_local.py.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from streamscope.backends import local
from streamscope.backends.local import build
from streamscope.backends.local import models as local_models
from streamscope.backends.local import server as local_server
from streamscope.backends.local.build import ServerBuild

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="shell-script servers, /proc")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("STREAMSCOPE_BACKEND", "STREAMSCOPE_MODEL", local.PORT_ENV, local.MODELS_DIR_ENV):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("value", ["99999", "65536", "-1", "0", "eighty", "80.5", " 8 0 "])
def test_a_bad_port_setting_is_one_line(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(local.PORT_ENV, value)
    with pytest.raises(local.LocalServerError, match=r"is not a port number \(1-65535\)") as caught:
        local_server._port()
    assert "\n" not in str(caught.value)


def _models_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamscope", "models", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_model_cache_under_a_file_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    done = _models_cli({local.MODELS_DIR_ENV: str(tmp_path / "file" / "models")})
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert "cannot write the model cache" in line and local.MODELS_DIR_ENV in line
    assert "Traceback" not in done.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")
def test_a_read_only_model_cache_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    done = _models_cli({local.MODELS_DIR_ENV: str(folder)})
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert local.MODELS_DIR_ENV in line


@pytest.fixture
def small_models(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[Path]:
    """The two models' aliases, with small files of our own in a cache folder, checked and stamped."""
    folder = tmp_path / "models"
    folder.mkdir()
    monkeypatch.setenv(local.MODELS_DIR_ENV, str(folder))
    models, paths = [], []
    for n, model in enumerate(local.MODELS):
        data = f"model {n} ".encode() * 1000
        path = folder / model.file_name
        path.write_bytes(data)
        small = dataclasses.replace(model, size=len(data), sha256=hashlib.sha256(data).hexdigest())
        local_models._stamp(path).write_text(
            json.dumps({"sha256": small.sha256, "mtime_ns": path.stat().st_mtime_ns})
        )
        models.append(small)
        paths.append(path)
    monkeypatch.setattr(local_models, "MODELS", tuple(models))
    return paths


def _damage_in_place(path: Path) -> None:
    before = path.stat()
    with path.open("r+b") as f:
        f.write(b"X")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_verify_finds_a_file_damaged_in_place(
    small_models: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _damage_in_place(small_models[0])
    model = local_models.MODELS[0]
    assert local_models._verified(model, small_models[0])  # size and timestamp alone cannot tell
    [problem] = local_models.verify_models(log=lambda _: None)
    assert str(small_models[0]) in problem and "damaged" in problem
    assert not local_models._verified(model, small_models[0])  # its stamp is gone: the next fetch replaces it
    fetched: list[str] = []
    monkeypatch.setattr(local_models, "_assemble", lambda m, path, log: fetched.append(m.alias))
    local_models.fetch_models(log=lambda _: None, verify=True)
    assert fetched == [model.alias]


def _fake_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, script: str) -> None:
    binary = tmp_path / "llama-server"
    binary.write_text("#!/bin/sh\n" + script + "\n")
    binary.chmod(0o755)
    monkeypatch.setattr(local_server, "server_build", lambda: ServerBuild(binary, {"version": "stand-in"}))


def test_two_servers_keep_their_files_apart(
    small_models: list[Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _fake_server(monkeypatch, tmp_path, "exit 0")
    first, second = local.LocalServer(), local.LocalServer()
    try:
        assert first.run_dir != second.run_dir and first.log_path != second.log_path
        assert first.command()[-3] != second.command()[-3]  # each its own models file
    finally:
        first.stop()
        second.stop()
    assert not first.run_dir.exists()


def _start_failure(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, script: str) -> str:
    _fake_server(monkeypatch, tmp_path, script)
    with pytest.raises(local.LocalServerError) as caught:
        local.LocalServer().start()
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_a_port_clash_is_named(
    small_models: list[Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Another kernel's server took the port between our check and our server's bind.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setattr(local_server, "_port", lambda: port)
        script = "echo 'srv    load_model: loading'; echo 'E couldn'\"'\"'t bind HTTP server socket'; exit 1"
        message = _start_failure(monkeypatch, tmp_path, script)
    assert f"port {port} on 127.0.0.1 was taken" in message and local.PORT_ENV in message


def test_a_signal_is_named(small_models: list[Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    message = _start_failure(monkeypatch, tmp_path, "kill -SEGV $$")
    assert message.startswith("the local server exited (signal SIGSEGV)")


def test_a_timeout_is_named(
    small_models: list[Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(local_server, "READY_TIMEOUT_S", 1.0)
    message = _start_failure(monkeypatch, tmp_path, "exec sleep 30")
    assert message.startswith("the local server did not answer within 1 s")


def test_a_failed_start_checks_the_models_again(
    small_models: list[Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _damage_in_place(small_models[1])
    message = _start_failure(monkeypatch, tmp_path, "echo 'E gguf_init: failed to read magic'; exit 1")
    assert f"{small_models[1]} is damaged" in message
    assert message.endswith(f"run {local.FETCH_COMMAND}")


def test_a_missing_compiler_is_one_line_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(build.SERVER_DIR_ENV, str(tmp_path / "server"))
    monkeypatch.setattr(build.shutil, "which", lambda name: None)
    with pytest.raises(local.LocalServerError) as caught:
        build.ensure_server(log=lambda _: None)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("building llama-server needs cmake and a C++ compiler: sudo apt-get install")
    assert message.endswith("then python -m streamscope build-server")


def test_an_unwritable_server_cache_names_the_variable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    done = subprocess.run(
        [sys.executable, "-m", "streamscope", "build-server"],
        env={**os.environ, build.SERVER_DIR_ENV: str(tmp_path / "file" / "server")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert "cannot write the server cache" in line and build.SERVER_DIR_ENV in line
