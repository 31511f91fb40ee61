"""A real client library run on a recording through the replay server, for the tests and the benchmark.

tests/clients/test_clients.py checks what each client received; benchmarks/clients.py times it.
A client runs as a child process in its own environment (tests/clients/drive.py in .venv-clients,
or tests/clients/node/stream.mjs under Node) and prints a JSON line per text piece.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamscope.chunks import sse_payloads, text_and_output
from streamscope.recording import Recording

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
CLIENTS_PYTHON = ROOT / ".venv-clients" / "bin" / "python"
NODE_MODULES = HERE / "node" / "node_modules"
SEED = "seed-chat-count-to-100-stream"
# A Responses recording for the clients whose docs lead with the Responses API (no seed is one).
RESPONSES = "llamaserver-smollm2-responses-count-to-20-stream"
PYTHON_CLIENTS = ("langchain", "litellm", "pydantic-ai", "llm", "openai-agents", "curl")
CASES = [
    *((client, SEED) for client in (*PYTHON_CLIENTS, "vercel-ai")),
    *((client, RESPONSES) for client in ("openai-agents", "vercel-ai", "curl")),
]


def client_command(client: str, base_url: str, recording: Recording) -> list[str]:
    """The command that streams ``recording``'s request through ``client`` (see drive.py's output)."""
    body = json.dumps(recording.request["body"])
    if client == "vercel-ai":
        return ["node", str(HERE / "node" / "stream.mjs"), base_url, body]
    return [str(CLIENTS_PYTHON), str(HERE / "drive.py"), client, base_url, body]


def client_env() -> dict[str, str]:
    """The environment a client runs in: this one, told to stay off the network."""
    # LiteLLM fetches a model cost map at import unless told to use its own copy.
    return {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}


def missing(client: str) -> str | None:
    """Why ``client`` cannot run here, or None."""
    if client == "vercel-ai":
        if shutil.which("node") is None:
            return "node is not installed"
        if not NODE_MODULES.is_dir():
            return "the Vercel AI SDK is not installed: run `make clients` (npm ci in tests/clients/node)"
        return None
    if client == "curl" and shutil.which("curl") is None:
        return "curl is not installed"
    if not CLIENTS_PYTHON.exists():
        return "the client libraries' environment .venv-clients is absent: run `make clients`"
    return None


@dataclass
class Recorded:
    """A recording's text, when its first text and its last event were sent (seconds from the request)."""

    text: str
    first_s: float
    end_s: float


def recorded_text(recording: Recording) -> Recorded:
    pieces = []
    for event in recording.events or []:
        for _, payloads in sse_payloads([event.raw.encode()]):
            for payload in payloads:
                text = text_and_output(payload)[0] if isinstance(payload, dict) else ""
                if text:
                    pieces.append((event.t, text))
    return Recorded("".join(t for _, t in pieces), pieces[0][0], (recording.events or [])[-1].t)


class ClientFailed(Exception):
    """A client exited with an error (its stderr's end is the message)."""


Run = tuple[list[dict[str, Any]], float]  # the text pieces a client yielded ({"t", "text"}), and its end


def stream(client: str, base_url: str, recording: Recording, runs: int = 1) -> list[Run]:
    """What ``client`` received in each run of ``recording``'s request, in one process.

    Each run is timed from its own start; after the first, the client is warm (imports and
    first-call costs paid).
    """
    command = [*client_command(client, base_url, recording), str(runs)]
    done = subprocess.run(command, capture_output=True, text=True, env=client_env(), timeout=120 * runs)
    if done.returncode != 0:
        raise ClientFailed(done.stderr[-3000:])
    result: list[Run] = []
    pieces: list[dict[str, Any]] = []
    for line in map(json.loads, done.stdout.splitlines()):
        if "end" in line:
            result.append((pieces, line["end"]))
            pieces = []
        else:
            pieces.append(line)
    return result
