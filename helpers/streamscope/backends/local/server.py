"""The local backend's server: llama-server in router mode, in a child process, on 127.0.0.1.

One router serves both models (one base URL for the SDK's one client; each model in its own
llama-server process with its own options). Each server has its own folder (models file and log),
so two kernels can start one at once; a failed start names its cause in one line.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from ...errors import LocalServerError
from . import models
from .build import BUILD_COMMAND, SOURCE, ServerBuild, installed_server
from .models import CHAT_MODEL, COMPLETION_MODEL, FETCH_COMMAND, INSTALL_COMMAND, model_path
from .tool_use import with_tool_use_template

__all__ = [
    "CONTEXT_TOKENS",
    "MAX_REPLY_TOKENS",
    "PORT_ENV",
    "READY_TIMEOUT_S",
    "LocalServer",
    "cpu_model",
    "server_build",
    "unavailable",
]

PORT_ENV = "STREAMSCOPE_LOCAL_PORT"
# Loading both models and warming up takes about 1.5 s here; a busy machine may need far more.
READY_TIMEOUT_S = 120.0
# Each model's context; the longest recorded prompt and reply together use well under 1,000 tokens.
CONTEXT_TOKENS = 4096
MAX_REPLY_TOKENS = 256

# The ready check's prompt: several tokens, since a one-token prompt does not reach the matrix code
# where a wrongly built llama.cpp traps (measured: "1" passed, "0 1 2 3" died of SIGILL).
_PROBE_PROMPT = ", ".join(str(n) for n in range(1, 33))


def server_build() -> ServerBuild:
    """The built llama-server; :class:`LocalServerError` naming the fix if there is none."""
    build = installed_server()
    if build is None:
        raise LocalServerError(
            f"llama-server (llama.cpp {SOURCE.llama_cpp}) is not built yet: {INSTALL_COMMAND} "
            f"(or {BUILD_COMMAND})"
        )
    return build


def unavailable() -> str | None:
    """Why the local backend cannot start here (the server or a model is missing), or None."""
    try:
        server_build()
        for model in models.MODELS:
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
    """The port to serve on: ``STREAMSCOPE_LOCAL_PORT`` if set (1-65535, and free), else any free one."""
    setting = os.environ.get(PORT_ENV, "").strip()
    port = 0
    if setting:
        if not (setting.isdigit() and 1 <= int(setting) <= 65535):
            raise LocalServerError(
                f"{PORT_ENV}={setting!r} is not a port number (1-65535): "
                "set a free port, or unset it to use any"
            )
        port = int(setting)
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise LocalServerError(
                f"port {port} on 127.0.0.1 is busy: set {PORT_ENV} to a free port, or unset it to use any"
            ) from None
        return probe.getsockname()[1]


def _child_environment(run_dir: Path) -> dict[str, str]:
    # llama.cpp's OpenMP threads spin while they wait for each other: on a shared, busy machine
    # (load 10 on 2 cores, measured) that gave 0.7 tokens/s on 2 threads; with waiting threads
    # asleep (PASSIVE), 27 tokens/s on the same machine a minute later. The router also lists the
    # models in llama.cpp's download cache: an empty one of its own keeps the list to ours.
    return {"OMP_WAIT_POLICY": "PASSIVE", **os.environ, "LLAMA_CACHE": str(run_dir / "llama-cache")}


class LocalServer:
    """llama-server in router mode, in a child process, serving :data:`MODELS` on 127.0.0.1."""

    def __init__(self) -> None:
        self.build = server_build()
        self.version = self.build.version
        self.models = {m.alias: model_path(m) for m in models.MODELS}
        self.threads = _threads()
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        # This server's own folder: its models file and its log, apart from any other server's.
        self.run_dir = Path(tempfile.mkdtemp(prefix=f"streamscope-local-{os.getpid()}-"))
        self.log_path = self.run_dir / "llama-server.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def options(self, alias: str) -> dict[str, object]:
        """The options llama-server runs one model with (its command-line flags, without dashes)."""
        options: dict[str, object] = {
            "model": self.models[alias],
            "threads": self.threads,
            "threads-batch": self.threads,
            "ctx-size": CONTEXT_TOKENS,
            # llama-server's default is no limit but the context. SmolLM2 at temperature 0 counts
            # "from 1 to 50" on past 50 to the end of its context (measured: 4,051 tokens, 8 min);
            # a repetition penalty stops it, but it no longer counts. So every reply ends by this
            # many tokens (finish_reason "length"), unless the request asks for fewer.
            "n-predict": MAX_REPLY_TOKENS,
        }
        if alias == CHAT_MODEL:
            # SmolLM2's own template for every request, the tool-use one (in the file: tool_use.py)
            # for requests with tools.
            # A file that is not GGUF stays as it is: llama-server's load failure names the damage.
            with contextlib.suppress(ValueError):
                options |= {"model": with_tool_use_template(self.models[alias])}
            options |= {"jinja": "true"}
        return options

    def presets(self) -> str:
        """The router's models file: one INI section per alias, each loaded at start."""
        lines = ["version = 1"]
        for alias in self.models:
            lines.append(f"\n[{alias}]")
            lines += [f"{key} = {value}" for key, value in self.options(alias).items()]
            lines.append("load-on-startup = true")
        return "\n".join(lines) + "\n"

    def command(self) -> list[str]:
        presets = self.run_dir / "models.ini"
        presets.write_text(self.presets())
        server = [str(self.build.binary), "--host", "127.0.0.1", "--port", str(self.port),
                  "--models-preset", str(presets), "--models-max", str(len(models.MODELS))]  # fmt: skip
        return [sys.executable, "-m", "streamscope.backends.local.child", str(os.getpid()), *server]

    def start(self) -> LocalServer:
        self.port = _port()
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.command(),
                env=_child_environment(self.run_dir),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.run_dir,
            )
        self._wait_until_ready()
        return self

    def load(self, alias: str) -> None:
        """Nothing to do: both models stay loaded. Kept so a caller need not know that."""

    def _models_status(self) -> dict[str, dict]:
        with urllib.request.urlopen(self.base_url + "/models", timeout=5) as answer:
            listed = json.load(answer).get("data", [])
        return {entry.get("id"): entry.get("status") or {} for entry in listed if isinstance(entry, dict)}

    def _wait_until_ready(self) -> None:
        """Until the router lists every model as loaded, then until the chat model has generated a token.

        The token matters: a llama.cpp built for CPU features this machine reports but traps
        (AMX in this kind of VM) loads and lists its models, then dies with SIGILL at the first
        generation.
        """
        assert self.process is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        loaded = False
        probe = urllib.request.Request(
            self.base_url + "/completions",
            data=json.dumps({"model": CHAT_MODEL, "prompt": _PROBE_PROMPT, "max_tokens": 1}).encode(),
            headers={"content-type": "application/json"},
        )
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise self._start_failure(self._exit_cause())
            with contextlib.suppress(OSError, ValueError):
                if not loaded:
                    status = self._models_status()
                    if failed := [a for a in self.models if status.get(a, {}).get("failed")]:
                        code = status[failed[0]].get("exit_code")
                        raise self._start_failure(f"model {failed[0]} failed to load ({_how(code)})")
                    loaded = all(status.get(a, {}).get("value") == "loaded" for a in self.models)
                    continue
                with urllib.request.urlopen(probe, timeout=30) as answer:
                    if answer.status == 200:
                        return
            time.sleep(0.05)
        raise self._start_failure(f"did not answer within {READY_TIMEOUT_S:.0f} s")

    def _exit_cause(self) -> str:
        assert self.process is not None
        code = self.process.wait()
        text = self.log_path.read_text(errors="replace").lower()
        if "couldn't bind" in text or "address already in use" in text:
            return (
                f"port {self.port} on 127.0.0.1 was taken (by another server?): set {PORT_ENV} to a free port"
            )
        return f"exited ({_how(code)})"

    def _start_failure(self, cause: str) -> LocalServerError:
        """Stop what is left, look for the reason a model would not load, and say it in one line."""
        self.stop(keep_log=True)
        log = self.last_log_line()
        if "illegal instruction" in log.lower() or "sigill" in cause.lower():
            return LocalServerError(
                f"the local server {cause}: llama.cpp was built for CPU features this machine does not run "
                f"(log: {self.log_path}); delete {self.build.binary.parent.parent} and {INSTALL_COMMAND}"
            )
        if damaged := models.verify_models(log=lambda _: None):
            return LocalServerError(f"the local server {cause}: {damaged[0]}: run {FETCH_COMMAND}")
        return LocalServerError(f"the local server {cause}: {log} (log: {self.log_path})")

    def last_log_line(self) -> str:
        with contextlib.suppress(OSError):
            lines = self.log_path.read_text(errors="replace").splitlines()
            # The router prefixes its model processes' lines with their names: the last error first.
            errors = [line for line in lines if " E " in line or "error" in line.lower()]
            return (errors or [line for line in lines if line.strip()] or ["no output"])[-1].strip()
        return "no log"

    def stop(self, *, keep_log: bool = False) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if not keep_log:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    @property
    def banner(self) -> str:
        return (
            f"llama-server (llama.cpp {SOURCE.llama_cpp}) at {self.base_url}: {CHAT_MODEL} "
            f"(chat, Responses) and {COMPLETION_MODEL} (completions), on this CPU ({cpu_model()}, "
            f"{self.threads} threads), live"
        )

    def provenance(self, alias: str) -> dict[str, object]:
        """What a recording made on this server says about it."""
        model = next((m for m in models.MODELS if m.alias == alias), models.MODELS[0])
        return {
            "server": (
                f"llama-server (llama.cpp {SOURCE.llama_cpp}, built here from {SOURCE.package} "
                f"{SOURCE.version}, sha256 {SOURCE.sha256[:12]}...) in router mode on 127.0.0.1"
            ),
            "server_build": (
                f"{self.build.record.get('version_output', '')}; {self.build.record.get('compiler', '')}; "
                f"cmake {' '.join(self.build.record.get('cmake_options', []))}"
            ),
            "model_file": model.file_name,
            "model_sha256": model.sha256,
            "model_source": f"{', '.join(sorted({p.package + ' ' + p.version for p in model.parts}))} (PyPI)",
            # The options llama-server ran the model with (files by name: the folders are this machine's).
            "model_options": "; ".join(
                f"{key} {value.name if isinstance(value, Path) else value}"
                for key, value in self.options(model.alias).items()
            ),
            "cpu": cpu_model(),
            "threads": self.threads,
            # A shared machine: other work slows the model down, so say how busy it was.
            "load_average_1min": round(os.getloadavg()[0], 2),
        }


def _how(code: object) -> str:
    """An exit status in words: the watchdog passes a signal on as 128 + its number, as a shell does."""
    if isinstance(code, int) and code < 0:
        code = 128 - code
    if isinstance(code, int) and code > 128:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(code - 128).name}"
    return f"code {code}"
