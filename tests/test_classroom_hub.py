"""benchmarks/classroom.py --hub's client: cells run through a real Jupyter server's REST and websocket API.

The hub itself needs .venv-hub (tools/hub_venv.sh), which the tests do not build. What the
benchmark does on each learner's server is jupyter_server's own API, which ./.venv's
jupyter_server serves without a hub: a session opened on notebook 01's path, cells run over the
kernel's websocket, a cell's prints read back, a cell's error reported in one line. Also the
figures read from /proc, against getrusage's for the same process.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import resource
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("classroom", ROOT / "benchmarks" / "classroom.py")
classroom = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = classroom
_spec.loader.exec_module(classroom)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """./.venv's jupyter_server on loopback, rooted at the repository as the hub's servers are."""
    port, token = classroom._free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path_factory.mktemp("runtime"))}
    command = [
        sys.executable,
        "-m",
        "jupyter_server",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={ROOT}",
        *(["--allow-root"] if os.geteuid() == 0 else []),
    ]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}api/status?token={token}", timeout=2).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"jupyter_server did not start (exit {process.poll()})")
            time.sleep(0.2)
    yield url, token
    process.terminate()
    process.wait(timeout=30)


def _run(server: tuple[str, str], sources: list[str]) -> list[dict]:
    url, token = server

    async def run() -> list[dict]:
        async with aiohttp.ClientSession(headers={"Authorization": f"token {token}"}) as http:
            return await classroom.run_cells(http, url, sources, timeout_s=60)

    return asyncio.run(run())


def test_cells_run_in_order_in_the_notebooks_folder_and_the_last_cells_prints_come_back(server):
    outputs = _run(server, ["import os\nx = 21", "print(x * 2)\nprint(os.getcwd())"])
    text = "".join(o["text"] for o in outputs if o["name"] == "stdout")
    assert text == f"42\n{ROOT / 'notebooks'}\n"


def test_a_cells_error_is_one_line_naming_it(server):
    with pytest.raises(classroom.ClassroomError, match="ZeroDivisionError: division by zero"):
        _run(server, ["1 / 0", "print('never run')"])


def test_the_report_is_read_from_the_report_cells_print():
    outputs = [{"output_type": "stream", "name": "stdout", "text": f"{classroom.MARK}" + '{"cpu_s": 1.5}\n'}]
    assert classroom.read_report(outputs) == {"cpu_s": 1.5}
    with pytest.raises(classroom.ClassroomError):
        classroom.read_report([{"output_type": "stream", "name": "stdout", "text": "no report\n"}])


def test_process_figures_agree_with_getrusage_for_this_process():
    peak = b"x" * (64 << 20)  # a peak of 64 MB, every page touched
    del peak
    peak_mb, cpu_s = classroom.process_figures(os.getpid())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    assert peak_mb == pytest.approx(usage.ru_maxrss / 1024, rel=0.02)
    assert cpu_s == pytest.approx(usage.ru_utime + usage.ru_stime, abs=0.05)
