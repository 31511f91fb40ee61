"""LocalServer: llama-cpp-python's server started in a child process on 127.0.0.1, until it answers."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from importlib import metadata
from pathlib import Path

from ...errors import LocalServerError
from .models import (
    CHAT_MODEL,
    COMPLETION_MODEL,
    INSTALL_COMMAND,
    MODELS,
    SERVER_PACKAGE,
    model_path,
    models_dir,
)

__all__ = [
    "PORT_ENV",
    "READY_TIMEOUT_S",
    "REBUILD_COMMAND",
    "LocalServer",
    "cpu_model",
    "server_version",
    "unavailable",
]

# A wheel built on another machine may use instructions this one lacks: build one here, not cached.
REBUILD_COMMAND = "pip install --no-cache-dir --force-reinstall --no-deps llama-cpp-python==0.3.36"


PORT_ENV = "STREAMSCOPE_LOCAL_PORT"


# Loading a model file and warming up takes about 1.6 s here; a busy machine may need far more.
READY_TIMEOUT_S = 120.0


# What the server needs beyond llama_cpp itself (its [server] extra).
_SERVER_MODULES = ("llama_cpp", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings")


# The ready check's prompt: several tokens, since a one-token prompt does not reach the matrix code
# where a wrongly built llama.cpp traps (measured: "1" passed, "0 1 2 3" died of SIGILL).
_PROBE_PROMPT = ", ".join(str(n) for n in range(1, 33))


def server_version() -> str:
    """The installed llama-cpp-python's version; :class:`LocalServerError` naming the fix if it is missing."""
    missing = [name for name in _SERVER_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise LocalServerError(
            f"the local backend needs llama-cpp-python[server] (missing: {', '.join(missing)}): "
            f"{INSTALL_COMMAND}"
        )
    return metadata.version(SERVER_PACKAGE)


def unavailable() -> str | None:
    """Why the local backend cannot start here (the extra or a model is missing), or None."""
    try:
        server_version()
        for model in MODELS:
            model_path(model)
    except LocalServerError as exc:
        return str(exc)
    return None


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _threads() -> int:
    # The CPUs this process may run on (a container's share), not the host's count.
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _port() -> int:
    setting = os.environ.get(PORT_ENV, "").strip()
    if setting:
        try:
            port = int(setting)
        except ValueError:
            raise LocalServerError(f"{PORT_ENV}={setting!r} is not a port number: unset it") from None
    else:
        port = 0
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise LocalServerError(
                f"port {port} on 127.0.0.1 is busy: set {PORT_ENV} to a free port, or unset it to use any"
            ) from None
        return probe.getsockname()[1]


def _child_environment() -> dict[str, str]:
    # llama.cpp's OpenMP threads spin while they wait for each other: on a shared, busy machine
    # (load 10 on 2 cores, measured) that gave 0.7 tokens/s on 2 threads; with waiting threads
    # asleep (PASSIVE), 27 tokens/s on the same machine a minute later.
    return {"OMP_WAIT_POLICY": "PASSIVE", **os.environ}


class LocalServer:
    """llama-cpp-python's server in a child process, serving :data:`MODELS` on 127.0.0.1."""

    def __init__(self) -> None:
        self.version = server_version()
        self.models = {m.alias: model_path(m) for m in MODELS}
        self.threads = _threads()
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = models_dir().parent / "local-server.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def config(self) -> dict:
        return {
            "host": "127.0.0.1",
            "port": self.port,
            # The default cancels a running generation when another request arrives.
            "interrupt_requests": False,
            "models": [
                {"model": str(path), "model_alias": alias, "n_threads": self.threads, "verbose": False}
                for alias, path in self.models.items()
            ],
        }

    def start(self) -> LocalServer:
        self.port = _port()
        config_path = self.log_path.with_name("local-server.json")
        config_path.write_text(json.dumps(self.config(), indent=2))
        command = [sys.executable, "-m", f"{__package__}.child", str(config_path), str(os.getpid())]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                env=_child_environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=tempfile.gettempdir(),
            )
        self._wait_until_ready()
        return self

    def load(self, alias: str) -> None:
        """Make ``alias`` the model in memory (the server holds one and swaps on demand), so that the
        next request to it is not timed with a model load."""
        body = {"model": alias, "prompt": "1", "max_tokens": 1}
        request = urllib.request.Request(
            self.base_url + "/completions", json.dumps(body).encode(), {"content-type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=READY_TIMEOUT_S) as answer:
            answer.read()

    def _wait_until_ready(self) -> None:
        """Until the server lists its models, then until it has generated one token.

        The token matters: a llama.cpp built for CPU features this machine reports but traps
        (``-march=native`` turning on AMX in a VM) loads and answers ``/v1/models``, then dies
        with SIGILL at the first generation.
        """
        assert self.process is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        probes = [
            urllib.request.Request(self.base_url + "/models"),
            urllib.request.Request(
                self.base_url + "/completions",
                data=json.dumps({"model": CHAT_MODEL, "prompt": _PROBE_PROMPT, "max_tokens": 1}).encode(),
                headers={"content-type": "application/json"},
            ),
        ]
        while probes and time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise LocalServerError(self._death_message())
            with contextlib.suppress(OSError), urllib.request.urlopen(probes[0], timeout=30) as answer:
                if answer.status == 200:
                    probes.pop(0)
                    continue
            time.sleep(0.05)
        if probes:
            self.stop()
            raise LocalServerError(self._death_message() if self.process.poll() else self._timeout_message())

    def _timeout_message(self) -> str:
        return f"the local server did not answer within {READY_TIMEOUT_S:.0f} s (log: {self.log_path})"

    def _death_message(self) -> str:
        assert self.process is not None
        self.process.wait()
        code = self.process.returncode
        lines = [line for line in self.log_path.read_text(errors="replace").splitlines() if line.strip()]
        last = lines[-1].strip() if lines else "no output"
        if "address already in use" in last.lower():
            return f"port {self.port} on 127.0.0.1 is busy: set {PORT_ENV} to a free port, or unset it"
        if code == -signal.SIGILL:
            return (
                "the local server died of SIGILL (illegal instruction) at its first token: llama.cpp was "
                "built for CPU features this machine does not run; build it for this CPU with "
                f"{REBUILD_COMMAND}"
            )
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"code {code}"
        return f"the local server exited at start ({how}): {last} (log: {self.log_path}); {INSTALL_COMMAND}"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    @property
    def banner(self) -> str:
        return (
            f"llama-cpp-python {self.version} server at {self.base_url}: {CHAT_MODEL} (chat) and "
            f"{COMPLETION_MODEL} (completions), on this CPU ({cpu_model()}, {self.threads} threads), live"
        )

    def provenance(self, alias: str) -> dict[str, object]:
        """What a recording made on this server says about it."""
        model = next((m for m in MODELS if m.alias == alias), MODELS[0])
        return {
            "server": f"llama-cpp-python {self.version} (python -m llama_cpp.server) on 127.0.0.1",
            "model_file": model.file_name,
            "model_sha256": model.sha256,
            "model_source": f"{', '.join(sorted({p.package + ' ' + p.version for p in model.parts}))} (PyPI)",
            "cpu": cpu_model(),
            "threads": self.threads,
            # A shared machine: other work slows the model down, so say how busy it was.
            "load_average_1min": round(os.getloadavg()[0], 2),
        }
