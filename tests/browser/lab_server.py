"""A throwaway JupyterLab server for the browser test: loopback only, random token, isolated settings.

It serves a copy of the notebooks, so running them in the browser can never change the committed files
(nbval's reference outputs). The Jupyter config, data, runtime and IPython dirs point into a temporary folder
so that a user's own settings do not leak in; the venv's data dir stays on the search path, which is where
the lab extensions (ipywidgets, anywidget, plotly) and the kernel spec are installed.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

START_TIMEOUT_S = 90.0
# The settings defaults the project ships (make lab and Binder use them): no news prompt over the charts.
SHIPPED_LAB_SETTINGS = Path(__file__).resolve().parents[2] / "binder" / "lab-settings"


@dataclass(frozen=True)
class LabServer:
    base_url: str
    token: str
    root_dir: Path
    log_path: Path

    def page_url(self, path: str) -> str:
        return f"{self.base_url}/{path}?token={self.token}"

    def get_json(self, api_path: str) -> Any:
        with urllib.request.urlopen(self._request(api_path), timeout=10) as response:
            return json.load(response)

    def shut_down_kernels(self) -> None:
        """Stop every session's kernel: notebooks run one after another on a small machine."""
        for session in self.get_json("api/sessions"):
            urllib.request.urlopen(
                self._request(f"api/sessions/{session['id']}", "DELETE"), timeout=30
            ).close()

    def _request(self, api_path: str, method: str = "GET") -> urllib.request.Request:
        return urllib.request.Request(
            f"{self.base_url}/{api_path}", method=method, headers={"Authorization": f"token {self.token}"}
        )

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def isolated_jupyter_env(home: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("JUPYTER", "IPYTHON"))}
    dirs = {
        "JUPYTER_CONFIG_DIR": home / "config",
        "JUPYTER_DATA_DIR": home / "data",
        "JUPYTER_RUNTIME_DIR": home / "runtime",
        "IPYTHONDIR": home / "ipython",
        "JUPYTERLAB_SETTINGS_DIR": home / "lab-settings",
        "JUPYTERLAB_WORKSPACES_DIR": home / "lab-workspaces",
    }
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    env.update({key: str(path) for key, path in dirs.items()})
    return env


@contextmanager
def running_lab(root_dir: Path, home: Path) -> Iterator[LabServer]:
    """Start `jupyter lab` from this venv on a free loopback port; stop it on exit."""
    port = free_loopback_port()
    token = secrets.token_hex(24)
    log_path = home / "jupyterlab.log"
    command = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        "--no-browser",
        "--allow-root",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root_dir}",
        f"--LabApp.app_settings_dir={SHIPPED_LAB_SETTINGS}",
        "--LabApp.news_url=",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, env=isolated_jupyter_env(home), stdout=log, stderr=subprocess.STDOUT, cwd=root_dir
        )
    lab = LabServer(f"http://127.0.0.1:{port}", token, root_dir, log_path)
    try:
        wait_until_answering(lab, process)
        yield lab
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until_answering(lab: LabServer, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with code {process.returncode}:\n{lab.log_tail()}")
        try:
            lab.get_json("api/status")
            return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.25)
    raise RuntimeError(f"jupyter lab did not answer within {START_TIMEOUT_S:.0f} s:\n{lab.log_tail()}")
