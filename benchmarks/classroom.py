"""A classroom on one machine: notebook 01 run by N learners at once, each in a kernel of its own.

For each N (default 1, 5, 10, 20; ``--learners 1 5`` to choose), N copies of
``notebooks/01_streaming_chat_completions.ipynb`` run at once on the replay backend, each in its
own kernel (so each with its own replay server thread, as on a hub where every learner has a
server). Two ways:

- by default, with nbclient, each kernel started by this process;
- with ``--hub``, through a real JupyterHub on 127.0.0.1 (``tools/jupyterhub_config.py``, built
  by ``tools/hub_venv.sh``): each learner a new hub user whose single-user server (./.venv's
  jupyter_server) starts the kernel, as JupyterLab does (a session on the notebook's path), and
  runs the cells sent over that server's kernel websocket, through the hub's proxy.

A last cell, added to each copy and never saved, reports from inside the kernel:

- the kernel's peak RSS (``getrusage``'s ``ru_maxrss``) and CPU seconds (user + system, every
  thread: the replay server and the reader run there too), over the whole run, start-up included;
- the TTFT the notebook measured (section 4's by-hand ``ttft`` and the chart's ``timeline``),
  against the recording's own (the seed's count-to-100 stream: 0.10 s);
- the replay lag p99 over every event its replay server sent (the sent log's ``sent_s`` against
  ``due_s``), and what the notebook's live chart said about it (``chart.lag.describe()``).

With ``--hub`` each learner's single-user server gets the same two figures (peak RSS and CPU
seconds over its life, read from ``/proc`` once the notebook has run, so Linux only), with the
seconds its spawn took; after each round, the hub's and the proxy's.

Per N it prints each kernel's line, then the median and worst over the kernels, the wall time
of the whole round, how many charts said the machine was busy (``streamscope.lag``: p99
above 5 ms), and the CPU this process took meanwhile (the client side: nbclient, or the websocket
client standing in for the learners' browsers), which shares the machine with the learners.
The load average is printed before each round: on a shared machine the figures are that
machine's, not the package's.

Run: ``.venv/bin/python benchmarks/classroom.py --learners 1 5`` (about a minute per round);
``tools/hub_venv.sh`` once, then ``.venv/bin/python benchmarks/classroom.py --hub --learners 1 5``
(about two minutes: a hub started, then each round's servers spawned, used and stopped).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from copy import deepcopy
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import nbformat
import psutil
from jupyter_client.jsonutil import json_default
from jupyter_client.session import Session
from nbclient import NotebookClient
from streamscope.sse import SSEDecoder

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "01_streaming_chat_completions.ipynb"
HUB_VENV = ROOT / ".venv-hub"
HUB_CONFIG = ROOT / "tools" / "jupyterhub_config.py"
MARK = "CLASSROOM-REPORT "

# Run in each kernel once the notebook has: what the learner's run cost and measured.
REPORT_CELL = f'''
import json, os, resource, statistics, sys
import streamscope
from streamscope.recording import load_recording
from streamscope.timing import Timeline

usage = resource.getrusage(resource.RUSAGE_SELF)
lags_ms = [
    (sent - due) * 1000
    for line in streamscope.sent_log() or []
    for sent, due in zip(line.get("sent_s") or [], line.get("due_s") or [])
]
recorded = Timeline.from_recording(load_recording("seed-chat-count-to-100-stream")).metrics().ttft
print("{MARK}" + json.dumps({{
    "rss_mb": usage.ru_maxrss / 1024,
    "cpu_s": usage.ru_utime + usage.ru_stime,
    "ttft_by_hand_s": ttft,
    "ttft_chart_s": timeline.metrics().ttft,
    "ttft_recorded_s": recorded,
    "replay_lag_p99_ms": statistics.quantiles(lags_ms, n=100, method="inclusive")[98],
    "events": len(lags_ms),
    "chart_busy": chart.lag.busy,
    "chart_said": chart.lag.describe(),
    "python": sys.executable,
    "parent_pid": os.getppid(),
}}))
'''

Learner = Callable[[int], Awaitable[dict[str, Any]]]


class ClassroomError(RuntimeError):
    """A learner's run did not do what the benchmark asked (its hub, server or kernel)."""


def learner_copy(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """One learner's notebook: the lesson, then the report cell."""
    copy = deepcopy(notebook)
    copy.cells.append(nbformat.v4.new_code_cell(REPORT_CELL))
    return copy


def read_report(outputs: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures the report cell printed, from its outputs (nbformat's shape)."""
    for output in outputs:
        text = output.get("text", "")
        if MARK in text:
            return json.loads(text.split(MARK, 1)[1])
    raise ClassroomError("the report cell printed nothing")


async def run_in_kernel(notebook: nbformat.NotebookNode, timeout_s: int, _index: int) -> dict[str, Any]:
    """Execute one learner's copy in a kernel of its own, started here by nbclient (learner
    ``_index`` of the round: every such learner is alike)."""
    copy = learner_copy(notebook)
    client = NotebookClient(
        copy,
        timeout=timeout_s,
        kernel_name="python3",  # ipykernel's own spec: this Python (the venv's)
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    await client.async_execute()
    return read_report(copy.cells[-1].outputs)


def process_figures(pid: int) -> tuple[float, float]:
    """A live process's peak RSS in MB (``VmHWM``) and CPU seconds (user + system, every thread)."""
    status = Path(f"/proc/{pid}/status").read_text()
    peak_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()  # after the name
    return peak_kb / 1024, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Hub:
    """The trial's JupyterHub (tools/jupyterhub_config.py), started for one run of the benchmark."""

    def __init__(self, workdir: Path) -> None:
        self.url = f"http://127.0.0.1:{_free_port()}"
        self.log = workdir / "jupyterhub.log"
        token = secrets.token_hex(32)  # in the hub's environment only, never on disk
        env = {
            **os.environ,
            "STREAMSCOPE_HUB_PORT": self.url.rsplit(":", 1)[1],
            "STREAMSCOPE_HUB_API_PORT": str(_free_port()),
            "STREAMSCOPE_HUB_PROXY_API_PORT": str(_free_port()),
            "STREAMSCOPE_HUB_TOKEN": token,
            "STREAMSCOPE_HUB_HOMES": str(workdir),  # each learner a new user, with an empty home
        }
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [str(HUB_VENV / "bin" / "jupyterhub"), "-f", str(HUB_CONFIG)],
                cwd=workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.http = aiohttp.ClientSession(headers={"Authorization": f"token {token}"})

    def log_tail(self, lines: int = 15) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    async def api(self, method: str, path: str) -> Any:
        async with self.http.request(method, f"{self.url}/hub/api/{path}") as response:
            if response.status >= 400:
                raise ClassroomError(f"{method} /hub/api/{path}: {response.status} {await response.text()}")
            return await response.json() if response.content_type == "application/json" else None

    async def wait_up(self, timeout_s: float = 120) -> str:
        """Wait until the hub answers through its proxy; its version."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ClassroomError(f"jupyterhub exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                return (await self.api("GET", ""))["version"]
            except (aiohttp.ClientError, ClassroomError):
                await asyncio.sleep(0.5)
        raise ClassroomError(f"jupyterhub did not answer in {timeout_s:.0f} s:\n{self.log_tail()}")

    async def start_server(self, name: str) -> float:
        """Create the user and start its server; the seconds until the hub says it is ready (the
        end of the spawn's progress stream, which a learner's browser watches while waiting)."""
        start = time.perf_counter()
        await self.api("POST", f"users/{name}")
        await self.api("POST", f"users/{name}/server")
        decoder = SSEDecoder()
        async with self.http.get(f"{self.url}/hub/api/users/{name}/server/progress") as response:
            if response.status >= 400:
                raise ClassroomError(f"{name}'s spawn progress: {response.status} {await response.text()}")
            async for piece in response.content.iter_any():
                for event in decoder.feed(piece):
                    progress = json.loads(event.data)
                    if progress.get("ready"):
                        return time.perf_counter() - start
                    if progress.get("failed"):
                        raise ClassroomError(f"{name}: {progress['message']}\n{self.log_tail()}")
        raise ClassroomError(f"{name}'s spawn progress ended, neither ready nor failed:\n{self.log_tail()}")

    async def stop_server(self, name: str) -> None:
        await self.api("DELETE", f"users/{name}/server")
        while (await self.api("GET", f"users/{name}"))["servers"]:
            await asyncio.sleep(0.5)

    def figures(self) -> str:
        """The hub's and its proxy's peak RSS and CPU seconds so far."""
        proxies = [
            child.pid
            for child in psutil.Process(self.process.pid).children()
            if "configurable-http-proxy" in " ".join(child.cmdline())
        ]
        parts = []
        for label, pid in [("hub", self.process.pid), *(("proxy", pid) for pid in proxies)]:
            rss_mb, cpu_s = process_figures(pid)
            parts.append(f"{label}: peak RSS {rss_mb:.0f} MB, CPU {cpu_s:.1f} s")
        return "; ".join(parts)

    async def close(self) -> None:
        await self.http.close()
        self.process.terminate()  # the hub stops the servers it started, and its proxy
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


async def _ask(
    ws: aiohttp.ClientWebSocketResponse,
    session: Session,
    msg_type: str,
    content: dict[str, Any],
    timeout_s: int,
) -> list[dict[str, Any]]:
    """Send one shell request over a kernel's websocket; the stream output it caused, once both its
    reply and the kernel's idle status have come (iopub and shell are separate: either may be first)."""
    request = session.msg(msg_type, content)
    request["channel"] = "shell"
    await ws.send_str(json.dumps(request, default=json_default))
    reply: dict[str, Any] = {}
    outputs: list[dict[str, Any]] = []
    idle = False
    try:
        async with asyncio.timeout(timeout_s):
            while not (reply and idle):
                frame = await ws.receive()
                if frame.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                    raise ClassroomError(f"the kernel's websocket closed during {msg_type}")
                if frame.type is not aiohttp.WSMsgType.TEXT:
                    continue  # a message with binary buffers (a widget's): no reply, status or print
                message = json.loads(frame.data)
                if message["parent_header"].get("msg_id") != request["header"]["msg_id"]:
                    continue
                if message["channel"] == "shell":
                    reply = message["content"]
                elif message["msg_type"] == "stream":
                    outputs.append({"output_type": "stream", **message["content"]})
                elif message["msg_type"] == "status":
                    idle = message["content"]["execution_state"] == "idle"
    except TimeoutError:
        raise ClassroomError(f"{msg_type}: no reply and idle kernel within {timeout_s} s") from None
    if reply.get("status") == "error":
        raise ClassroomError(f"{msg_type}: {reply.get('ename')}: {reply.get('evalue')}")
    return outputs


async def run_cells(
    http: aiohttp.ClientSession, server: str, sources: list[str], timeout_s: int
) -> list[dict[str, Any]]:
    """Open notebook 01's session on a Jupyter server (its REST API, as JupyterLab does when a
    learner opens it), run each source in its kernel over the kernel's websocket, in order, and
    shut the kernel down; the last source's stream outputs."""
    body = {
        "path": NOTEBOOK.relative_to(ROOT).as_posix(),
        "type": "notebook",
        "name": NOTEBOOK.name,
        "kernel": {"name": "python3"},
    }
    async with http.post(f"{server}api/sessions", json=body) as response:
        if response.status >= 400:
            raise ClassroomError(f"POST {server}api/sessions: {response.status} {await response.text()}")
        opened = await response.json()
    session = Session()
    channels = f"{server.replace('http', 'ws', 1)}api/kernels/{opened['kernel']['id']}/channels"
    outputs: list[dict[str, Any]] = []
    try:
        # No size limit: a new chart's widget carries plotly.js (5 MB) in one message.
        async with http.ws_connect(f"{channels}?session_id={session.session}", max_msg_size=0) as ws:
            await _ask(ws, session, "kernel_info_request", {}, timeout_s)
            for source in sources:
                content = {
                    "code": source,
                    "silent": False,
                    "store_history": True,
                    "user_expressions": {},
                    "allow_stdin": False,
                    "stop_on_error": True,
                }
                outputs = await _ask(ws, session, "execute_request", content, timeout_s)
    finally:
        async with http.delete(f"{server}api/sessions/{opened['id']}"):
            pass
    return outputs


async def run_on_hub(
    hub: Hub, notebook: nbformat.NotebookNode, timeout_s: int, round_size: int, index: int
) -> dict[str, Any]:
    """One hub learner: a new user, its server started by the hub, the notebook run through that
    server; the report cell's figures, the server's, and how long its spawn took."""
    name = f"n{round_size}-learner-{index}"
    spawn_s = await hub.start_server(name)
    try:
        sources = [cell.source for cell in learner_copy(notebook).cells if cell.cell_type == "code"]
        report = read_report(await run_cells(hub.http, f"{hub.url}/user/{name}/", sources, timeout_s))
        pid = report["parent_pid"]
        if "hub_singleuser.py" not in " ".join(psutil.Process(pid).cmdline()):
            raise ClassroomError(f"the kernel's parent (pid {pid}) is not {name}'s single-user server")
        report["server_rss_mb"], report["server_cpu_s"] = process_figures(pid)
        report["spawn_s"] = spawn_s
        return report
    finally:
        await hub.stop_server(name)


def _median_max(values: list[float]) -> str:
    return f"median {statistics.median(values):.2f}, max {max(values):.2f}"


async def run_round(learners: int, learner: Learner) -> None:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\n{learners} learner(s) at once; load average before: {load} ({os.cpu_count()} CPUs)")
    wall, own_cpu = time.perf_counter(), time.process_time()
    reports = await asyncio.gather(*(learner(i) for i in range(1, learners + 1)))
    wall, own_cpu = time.perf_counter() - wall, time.process_time() - own_cpu
    for i, r in enumerate(reports, 1):
        print(
            f"  kernel {i:>2}: peak RSS {r['rss_mb']:.0f} MB, CPU {r['cpu_s']:.1f} s, "
            f"TTFT {r['ttft_by_hand_s'] * 1000:.0f} ms by hand / {r['ttft_chart_s'] * 1000:.0f} ms chart "
            f"(recorded {r['ttft_recorded_s'] * 1000:.0f} ms), "
            f"replay lag p99 {r['replay_lag_p99_ms']:.2f} ms over {r['events']} events"
        )
        if "server_cpu_s" in r:
            print(
                f"             its server: peak RSS {r['server_rss_mb']:.0f} MB, "
                f"CPU {r['server_cpu_s']:.1f} s (spawned in {r['spawn_s']:.1f} s)"
            )
        print(f"             the chart said: {r['chart_said']}")
    print(f"  the kernels' Python: {', '.join(sorted({r['python'] for r in reports}))}")
    busy = sum(r["chart_busy"] for r in reports)
    errors = [abs(r["ttft_chart_s"] - r["ttft_recorded_s"]) * 1000 for r in reports]
    servers = (
        f"; server peak RSS MB {_median_max([r['server_rss_mb'] for r in reports])}; "
        f"server CPU s {_median_max([r['server_cpu_s'] for r in reports])}"
        if "server_cpu_s" in reports[0]
        else ""
    )
    print(
        f"  per learner: peak RSS MB {_median_max([r['rss_mb'] for r in reports])}; "
        f"CPU s {_median_max([r['cpu_s'] for r in reports])}; "
        f"chart TTFT error ms {_median_max(errors)}; "
        f"replay lag p99 ms {_median_max([r['replay_lag_p99_ms'] for r in reports])}{servers}"
    )
    print(f"  charts that said the machine was busy: {busy} of {learners}; the round took {wall:.1f} s")
    print(
        f"  this process (the learners' client side: sending cells, reading replies) used {own_cpu:.1f} s CPU"
    )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"  load average after: {load}")


async def run_hub_rounds(notebook: nbformat.NotebookNode, rounds: list[int], timeout_s: int) -> None:
    with tempfile.TemporaryDirectory(prefix="streamscope-hub-") as workdir:
        hub = Hub(Path(workdir))
        try:
            version = await hub.wait_up()
            print(
                f"jupyterhub {version} at {hub.url}, SimpleLocalProcessSpawner, servers from {ROOT / '.venv'}"
            )
            for learners in rounds:
                await run_round(learners, partial(run_on_hub, hub, notebook, timeout_s, learners))
                print(f"  {hub.figures()}")
        finally:
            await hub.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--learners", type=int, nargs="+", default=[1, 5, 10, 20], help="N per round (default: %(default)s)"
    )
    parser.add_argument("--timeout", type=int, default=300, help="seconds per cell (default: %(default)s)")
    parser.add_argument(
        "--hub",
        action="store_true",
        help="through JupyterHub's single-user servers (tools/hub_venv.sh first)",
    )
    args = parser.parse_args(argv)
    os.environ["STREAMSCOPE_BACKEND"] = "replay"  # inherited by every kernel
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    if not args.hub:
        print(f"notebook: {NOTEBOOK.relative_to(ROOT)}, replay backend, kernel: {sys.executable}")
        for learners in args.learners:
            asyncio.run(run_round(learners, partial(run_in_kernel, notebook, args.timeout)))
        return 0
    if not (HUB_VENV / "bin" / "jupyterhub").exists():
        print("classroom: no .venv-hub: run tools/hub_venv.sh first", file=sys.stderr)
        return 2
    print(f"notebook: {NOTEBOOK.relative_to(ROOT)}, replay backend, through JupyterHub")
    try:
        asyncio.run(run_hub_rounds(notebook, args.learners, args.timeout))
    except ClassroomError as error:
        print(f"classroom: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
