"""Install streamscope and the locked versions of what it needs into the running Python.

Usage: ``python tools/install_locked.py [EXTRA ...]`` from the repository's root (``make`` runs it
with ``test``, binder/postBuild with ``binder``).

pyproject.toml states ranges; requirements.lock pins one version of every package, with the sha256
of each of its files. pip takes the lock as constraints: of the lock it installs only what the
requested requirements need, at the locked version, and refuses any file whose hash differs. A
package the lock lacks would install unconstrained; tests/test_environment.py fails on it (run
``make lock``).

Two steps, because pip checks hashes for every requirement once any constraint has them, and the
package itself (a source directory) has no single file to hash: first its requirements under the
lock, then the package alone, editable, without dependencies.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"


def requirements(extras: list[str]) -> list[str]:
    """pyproject.toml's dependencies plus those of ``extras``."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    optional = project.get("optional-dependencies", {})
    unknown = [extra for extra in extras if extra not in optional]
    if unknown:
        raise SystemExit(f"unknown extra(s) {unknown}; pyproject.toml defines {sorted(optional)}")
    return list(project["dependencies"]) + [req for extra in extras for req in optional[extra]]


def main(extras: list[str]) -> None:
    pip = [sys.executable, "-m", "pip", "install", "--quiet"]
    with tempfile.NamedTemporaryFile("w", suffix=".txt", prefix="streamscope-requirements-") as listed:
        listed.write("\n".join(requirements(extras)) + "\n")
        listed.flush()
        subprocess.run([*pip, "--constraint", str(LOCK), "--requirement", listed.name], check=True)
    subprocess.run([*pip, "--no-deps", "--editable", str(ROOT)], check=True)
    # matplotlib builds its font cache on first import, warning on stderr when that is slow; built
    # here, it never lands in a notebook cell (nbval fails a cell on any stderr).
    subprocess.run([sys.executable, "-c", "import matplotlib.font_manager"], check=True)


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except subprocess.CalledProcessError as error:
        sys.exit(f"install_locked: {' '.join(error.cmd[3:5])} failed (exit {error.returncode}), see above")
