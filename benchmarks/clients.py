"""Real client libraries through the replay server: does each one see the recorded pace?

For each client of tests/clients (LangChain, LiteLLM, pydantic-ai, llm, openai-agents, curl,
the Vercel AI SDK under Node), the seed's count-to-100 chat stream (and, for the clients whose
docs lead with the Responses API, a recorded Responses stream) is streamed through a replay
server at speed 1, twice in one client process. Figures, for each run, timed by the client from
just before it was asked (tests/clients/drive.py, node/stream.mjs):

- first text: when the first non-empty text reached the caller, against the recording's
  first text offset; target: within 50 ms (issue 22);
- end: when the client's stream ended, against the recording's last event (`[DONE]`,
  `response.completed`); target: within 100 ms.

The first (cold) run includes each library's first-call costs (LiteLLM, pydantic-ai and
openai-agents set up on their first request); the second (warm) one is the pace a program sees
from its second request on. Peer: the recording itself, and curl, the
thinnest client. The load average is printed: on a shared machine other work adds delay.

Needs `make clients` (.venv-clients, tests/clients/node/node_modules); a client whose
environment is absent is reported as skipped. Run: .venv/bin/python benchmarks/clients.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "tests" / "clients"))

from client_runs import CASES, ClientFailed, missing, recorded_text, stream
from streamscope.recording import load_recording
from streamscope.replay import ReplayServer

FIRST_TARGET_MS, END_TARGET_MS = 50, 100


def main() -> None:
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    header = f"{'client':14} {'recording':48} {'run':5} {'first s':>8} {'rec.':>6} {'Δ ms':>6}"
    print(header + f" {'end s':>7} {'rec.':>6} {'Δ ms':>6}  within targets (50 / 100 ms)")
    with ReplayServer(speed=1) as server:
        for client, name in CASES:
            if (reason := missing(client)) is not None:
                print(f"{client:14} {name:48} skipped: {reason}")
                continue
            recording = load_recording(name)
            recorded = recorded_text(recording)
            try:
                runs = stream(client, server.base_url, recording, runs=2)
            except ClientFailed as exc:
                print(f"{client:14} {name:48} failed: {str(exc).splitlines()[-1]}")
                continue
            for label, (pieces, end) in zip(("cold", "warm"), runs, strict=True):
                text_ok = "".join(p["text"] for p in pieces) == recorded.text
                first = pieces[0]["t"] if pieces else float("nan")
                first_ms, end_ms = (first - recorded.first_s) * 1000, (end - recorded.end_s) * 1000
                within = abs(first_ms) <= FIRST_TARGET_MS and abs(end_ms) <= END_TARGET_MS
                verdict = ("yes" if within else "no") + ("" if text_ok else ", TEXT DIFFERS")
                print(
                    f"{client:14} {name:48} {label:5} {first:8.3f} {recorded.first_s:6.2f} {first_ms:6.0f}"
                    f" {end:7.3f} {recorded.end_s:6.2f} {end_ms:6.0f}  {verdict}"
                )
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")


if __name__ == "__main__":
    main()
