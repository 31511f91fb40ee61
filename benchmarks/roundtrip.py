"""Round trip: a real model's stream, recorded, then replayed: does the replay keep its schedule?

1. Starts the ``local`` backend (llama-cpp-python's server, SmolLM2 135M Instruct on this CPU)
   and records one stream with the project's recorder (``streamscope.recorder.record``, the code
   behind ``python -m streamscope record``): "Write the numbers from 1 to 50, separated by
   commas." at temperature 0, about 190 events, one token each, a dense schedule (a chunk every
   12-15 ms on a quiet machine, 40-50 ms on a busy one), timed to the microsecond.
2. Replays that recording at speed 1 through ``python -m streamscope serve`` (a subprocess),
   several rounds, and takes each event's arrival *at the wire*: one raw socket, a timestamp per
   ``recv()``, nothing parsed until the stream is over (HTTP/1.0, so no chunked framing).
   Figure: p99 over the events of |(arrival - first arrival) - (t - first t)|, in ms.
3. The floors. The live server against itself. Two identical requests (temperature 0, same
   tokens), each read at the wire the same way; p99 of the per-event difference between their
   schedules, both measured from their first event. That is how far a real server's own pace
   wanders from one run to the next: a replay closer than that to its recording is as faithful
   as a measurement of the live server could tell. And the machine's: a bare sleep-and-spin loop
   keeping the same schedule in this process (benchmarks/replay.py's ``timer_floor``), how late
   any Python process wakes here and now.

Target: replay within 1 ms p99 of the recorded schedule. Prints the figures; exits 0 unless it
could not run (2), e.g. without the ``local`` extra (``make local``).

Run: ``.venv/bin/python benchmarks/roundtrip.py`` (about 40 s; 1.5 min on a busy machine).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import socket
import statistics
import sys
import tempfile
import time

# benchmarks/replay.py: its percentile, priority, warm-up header, server launcher and free-port helper.
from replay import WARM, _free_port, p99, raise_priority, start_server, timer_floor
from streamscope.backends.local import CHAT_MODEL
from streamscope.backends.registry import shared_local_server
from streamscope.errors import LocalServerError, RecordError
from streamscope.recorder import record
from streamscope.sse import EventSplitter

TARGET_P99_MS = 1.0
BODY = {
    "model": CHAT_MODEL,
    "messages": [{"role": "user", "content": "Write the numbers from 1 to 50, separated by commas."}],
    "temperature": 0,
    "stream": True,
}


def wire_events(
    port: int, path: str, body: bytes, headers: dict[str, str] | None = None
) -> list[tuple[float, bytes]]:
    """POST ``body`` on a raw socket; (seconds from sending, raw SSE event) per data event, timed per recv().

    Comment events are left out: sse-starlette sends ``: ping`` every 15 s, which a slow live
    stream on a busy machine may get and its twin not.
    """
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    request = (
        f"POST {path} HTTP/1.0\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\n{extra}"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode() + body
    reads: list[tuple[float, bytes]] = []
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        start = time.perf_counter()
        connection.sendall(request)
        while data := connection.recv(65536):
            reads.append((time.perf_counter() - start, data))
    # Parsed only now, so that parsing never delays a timestamp.
    head, splitter, events = b"", EventSplitter(), []
    for t, data in reads:
        if not head:  # the status line and headers come first, in the first read(s)
            splitter.buffer += data
            if b"\r\n\r\n" not in splitter.buffer:
                continue
            head, _, data = splitter.buffer.partition(b"\r\n\r\n")
            splitter.buffer = b""
            if not head.startswith(b"HTTP/1.1 200") and not head.startswith(b"HTTP/1.0 200"):
                raise SystemExit(f"FAIL: {head.splitlines()[0].decode()}")
        events += [(t, raw) for raw in splitter.feed(data) if raw.startswith(b"data:")]
    return events


def differences_ms(times: list[float], reference: list[float]) -> list[float]:
    """|offset from the first event| differences, event by event, in ms."""
    if len(times) != len(reference):
        raise SystemExit(f"FAIL: {len(times)} events against {len(reference)}: not the same stream")
    return [abs((a - times[0]) - (b - reference[0])) * 1e3 for a, b in zip(times, reference, strict=True)]


def line(label: str, rounds: list[list[float]]) -> str:
    figures = ", ".join(f"{p99(r):.3f}" for r in rounds)
    medians = statistics.median(statistics.median(r) for r in rounds)
    return f"{label:<44} p99 {figures} ms (per round); median error {medians:.3f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    priority = raise_priority()  # before the servers start: they inherit it
    try:
        local = shared_local_server()
        with tempfile.TemporaryDirectory(prefix="streamscope-roundtrip-") as folder:
            rec = record("/v1/chat/completions", BODY, name="roundtrip", out_dir=folder, backend="local")
            replay_port = _free_port()
            server = start_server(replay_port, folder)
            try:
                recorded = [e.t for e in rec.events or [] if e.raw.startswith("data:")]
                body = json.dumps(BODY).encode()
                wire_events(replay_port, rec.path, body, WARM)  # one-time costs outside the rounds
                replays = [
                    differences_ms([t for t, _ in wire_events(replay_port, rec.path, body)], recorded)
                    for _ in range(args.rounds)
                ]
                floors_timer = [
                    timer_floor([t - recorded[0] for t in recorded])[0] for _ in range(args.rounds)
                ]
            finally:
                server.terminate()
                server.wait()
            floors = []
            for _ in range(args.rounds):
                first, second = (wire_events(local.port, rec.path, body) for _ in range(2))
                floors.append(differences_ms([t for t, _ in first], [t for t, _ in second]))
    except (LocalServerError, RecordError) as exc:
        print(f"roundtrip: cannot run: {exc}", file=sys.stderr)
        return 2

    events = rec.events or []
    gaps = sorted(b.t - a.t for a, b in itertools.pairwise(events))
    print(f"server: {local.banner}")
    print(f"priority: {priority}")
    print(f"load average: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"recorded: {len(events)} events over {events[-1].t:.3f} s; gap between events: median "
        f"{statistics.median(gaps) * 1e3:.2f} ms, min {gaps[0] * 1e3:.3f} ms"
    )
    print(line("replay at speed 1 vs its recording (wire)", replays))
    print(line("live vs live, two identical requests (wire)", floors))
    print(line("bare sleep-and-spin loop, same schedule", floors_timer))
    replay_p99 = statistics.median(p99(r) for r in replays)
    floor_p99 = statistics.median(p99(r) for r in floors)
    verdict = "met" if replay_p99 <= TARGET_P99_MS else "MISSED"
    print(
        f"median round: replay p99 {replay_p99:.3f} ms (target {TARGET_P99_MS:g} ms: {verdict}); "
        f"live floor p99 {floor_p99:.3f} ms; ratio floor/replay {floor_p99 / replay_p99:.1f}x; "
        f"timer-loop p99 {statistics.median(p99(r) for r in floors_timer):.3f} ms (this machine's own jitter)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
