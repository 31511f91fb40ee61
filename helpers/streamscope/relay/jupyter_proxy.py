"""A Jupyter server of the kernel's own, with jupyter-server-proxy, to measure the hop that Binder adds.

On Binder and JupyterHub the browser reaches a kernel's port only as ``/proxy/PORT/`` on the Jupyter
server. To time that hop where no browser runs, ``JupyterProxy().start()`` runs ``jupyter server`` on a
free loopback port (a random token, a temporary root, the user's config left alone) and
``.url_for(relay)`` names the relay through it; ``.headers`` carries the token.

jupyter-server-proxy (4.4 and later) streams a response only when the request's ``Accept`` header is
exactly ``text/event-stream``; any other request is read whole before a byte goes on.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from .server import Relay

START_TIMEOUT_S = 60.0


class JupyterProxy:
    """``jupyter server`` with jupyter-server-proxy, in a child process; ``.stop()`` ends it."""

    def __init__(self) -> None:
        self.token = secrets.token_hex(24)
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._home = tempfile.TemporaryDirectory(prefix="streamscope-jupyter-")

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"token {self.token}"}

    def url_for(self, relay: Relay) -> str:
        return f"http://127.0.0.1:{self.port}/{relay.proxy_path}"

    def start(self) -> JupyterProxy:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        home = Path(self._home.name)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "IPYTHON"))}
        env.update(JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_RUNTIME_DIR=str(home / "runtime"))
        command = [
            sys.executable, "-m", "jupyter", "server", "--no-browser", "--allow-root",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={home}",
        ]  # fmt: skip
        self._log = (home / "server.log").open("wb")
        self._process = subprocess.Popen(command, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/api/status", headers=self.headers)
        while True:
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"jupyter server did not start: see {home / 'server.log'}")
            try:
                with urllib.request.urlopen(request, timeout=2):
                    return self
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
            self._log.close()

    def __enter__(self) -> JupyterProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
