"""The local backend's server, measured at the wire: time to first token and tokens per second.

Starts the ``local`` backend (llama-server, SmolLM2 135M Instruct on this CPU) and sends the same
streamed chat request several times: "Write the numbers from 1 to 50, separated by commas." at
temperature 0, ``max_tokens`` 189 (the length of llama-cpp-python's reply to it, so that both
servers generate as many tokens). Each line is timed as httpx hands it over (HTTP/1.1: the
router sends an HTTP/1.0 answer in one piece at the end, so benchmarks/roundtrip.py's raw
HTTP/1.0 socket cannot time it).

- TTFT: from sending to the first event carrying content (llmperf's and genai-perf's first token).
- tokens/s: content events after the first, over the time from the first to the last (one token
  per event on this server; decode speed, the prompt's processing left out).

The peer, ``--peer URL``: any other OpenAI-compatible server on the same model file, for example
llama-cpp-python 0.3.36's server (``python -m llama_cpp.server --model SmolLM2-135M-Instruct.Q4_1.gguf
--n_threads 2 --n_ctx 4096``), which this backend ran before llama-server. Rounds alternate between
the two servers, so that the machine's other work falls on both alike, and the ratios are printed.
The first round on each is cold (no prompt cache); later identical rounds hit the prompt cache.

Run: ``.venv/bin/python benchmarks/local_server.py [--peer URL]`` (about 20 s a server). Exits 2
if the local backend cannot start (``make local-install``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import httpx2
from streamscope.backends.local import CHAT_MODEL, LocalServer
from streamscope.errors import LocalServerError

BODY = {
    "model": CHAT_MODEL,
    "messages": [{"role": "user", "content": "Write the numbers from 1 to 50, separated by commas."}],
    "temperature": 0,
    "max_tokens": 189,
    "stream": True,
}


def measure(base_url: str) -> tuple[float, float, int]:
    """(TTFT s, tokens/s, content events) of one streamed request."""
    content = []
    with httpx2.Client(timeout=120) as client:
        start = time.perf_counter()
        with client.stream("POST", base_url + "/chat/completions", json=BODY) as answer:
            answer.raise_for_status()
            for line in answer.iter_lines():
                t = time.perf_counter() - start
                payload = line.removeprefix("data:").strip()
                if payload and payload != "[DONE]":
                    choices = json.loads(payload).get("choices") or [{}]
                    if choices[0].get("delta", {}).get("content"):
                        content.append(t)
    return content[0], (len(content) - 1) / (content[-1] - content[0]), len(content)


def summary(rounds: list[tuple[float, float, int]]) -> tuple[float, float, float]:
    """(cold TTFT, warm TTFT median, tokens/s median) over the rounds, the first being cold."""
    warm = statistics.median(r[0] for r in rounds[1:] or rounds)
    return rounds[0][0], warm, statistics.median(r[1] for r in rounds)


def report(name: str, rounds: list[tuple[float, float, int]]) -> None:
    for n, (ttft, rate, count) in enumerate(rounds, 1):
        print(f"  {name} round {n}: TTFT {ttft * 1e3:.0f} ms, {rate:.1f} tokens/s, {count} content events")
    cold, warm, rate = summary(rounds)
    print(f"  {name}: cold TTFT {cold * 1e3:.0f} ms, warm TTFT median {warm * 1e3:.0f} ms, "
          f"tokens/s median {rate:.1f}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--peer", metavar="URL", help="another server's base URL (…/v1) to time beside it")
    args = parser.parse_args(argv)
    try:
        server = LocalServer().start()
    except LocalServerError as exc:
        print(f"local_server: cannot run: {exc}", file=sys.stderr)
        return 2
    ours: list[tuple[float, float, int]] = []
    peer: list[tuple[float, float, int]] = []
    try:
        for _ in range(args.rounds):
            ours.append(measure(server.base_url))
            if args.peer:
                peer.append(measure(args.peer.rstrip("/")))
    finally:
        server.stop()
    print(f"server: {server.banner}")
    print(f"load average: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    report("llama-server", ours)
    if peer:
        report(f"peer {args.peer}", peer)
        (c1, w1, r1), (c2, w2, r2) = summary(ours), summary(peer)
        print(f"llama-server against the peer: cold TTFT x{c1 / c2:.2f}, warm TTFT x{w1 / w2:.2f}, "
              f"tokens/s x{r1 / r2:.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
