"""Replay fidelity: does the replay server deliver a recorded stream on its recorded schedule?

Starts ``python -m streamscope serve --host 127.0.0.1 --port PORT --speed 1`` as a
subprocess and replays the seed's count-to-100 chat stream (the 2023 Cookbook
notebook's printed arrival times, 10 ms resolution) through the official SDK:
``client.chat.completions.create(model="gpt-3.5-turbo", messages=[...],
temperature=0, stream=True)``.

Figures, for each of the 302 chunks (the SDK yields one per ``data: {...}`` event):

- reply: the concatenated deltas must equal the recording's, chunk for chunk;
- TTFT: from just before ``create()`` to the first chunk (vLLM's convention);
  the seed printed 0.10 s;
- schedule error: |(arrival - first arrival) - (t - first t)| in ms, where t is
  the chunk's recorded offset; p99 over the chunks of a stream.

Arrival is taken at two places:

- "wire": when the read that completes the chunk's bytes returns in the client's
  HTTP layer (httpx2, under the SDK for one stream; alone for 20 streams). This
  is what the server controls, and what the targets apply to.
- "SDK": when the SDK hands the parsed chunk to the caller. Events recorded at the
  same moment arrive in one write and the SDK parses them one after another (its
  cost per chunk is printed), so inside a burst this adds up; with 20 streams in
  one Python process the parsing of the other streams' bursts adds up too.

Warm-up: one request per connection at speed 0 (``X-Streamscope-Speed: 0``) first,
so that one-time costs (imports, model classes, connections) fall outside the
measured streams. Peer: the recording's own timing resolution (10 ms); errors are
also given as a fraction of it.

Run: ``.venv/bin/python benchmarks/replay.py`` (about 30 s; a busy machine shows).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import openai
from streamscope.recording import RECORDINGS_DIR, Recording, load_recording
from streamscope.replay import SPEED_HEADER

SEED = "seed-chat-count-to-100-stream"
TARGET_ONE_STREAM_P99_MS = 1.0
TARGET_CONCURRENT_P99_MS = 3.0
TARGET_TTFT_S, TARGET_TTFT_TOLERANCE_S = 0.10, 0.010
WARM = {SPEED_HEADER: "0"}


@dataclass
class Stream:
    """One measured stream: perf_counter marks for its start, body reads and SDK chunks."""

    start: float
    reads: list[tuple[float, int]]  # (when the read returned, body bytes so far)
    body: bytes | None  # None: the SDK consumed it
    sdk: list[float] | None = None  # when the SDK yielded each chunk
    text: str | None = None


class _TimedStream(httpx2.SyncByteStream):
    def __init__(self, inner: httpx2.SyncByteStream, log: list[tuple[float, bytes]]) -> None:
        self.inner, self.log = inner, log

    def __iter__(self) -> Iterator[bytes]:
        for part in self.inner:
            self.log.append((time.perf_counter(), part))
            yield part

    def close(self) -> None:
        self.inner.close()


class _TimedTransport(httpx2.HTTPTransport):
    """Notes when each body read of the latest response returns (one request at a time)."""

    log: list[tuple[float, bytes]]

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        response = super().handle_request(request)
        self.log = []
        response.stream = _TimedStream(response.stream, self.log)  # type: ignore[arg-type]
        return response


def _reads(log: list[tuple[float, bytes]]) -> tuple[list[tuple[float, int]], bytes]:
    total, marks = 0, []
    for when, part in log:
        total += len(part)
        marks.append((when, total))
    return marks, b"".join(part for _, part in log)


def chunk_events(rec: Recording) -> list[tuple[float, int]]:
    """(recorded offset, body byte where the event ends) for each event the SDK yields as a chunk."""
    out, end = [], 0
    for event in rec.events or []:
        end += len(event.raw.encode())
        if event.raw.startswith("data: {"):
            out.append((event.t, end))
    return out


def expected_text(rec: Recording) -> str:
    parts = []
    for event in rec.events or []:
        if event.raw.startswith("data: {"):
            choices = json.loads(event.raw[len("data: ") :])["choices"]
            parts.append((choices[0]["delta"].get("content") or "") if choices else "")
    return "".join(parts)


def wire_times(stream: Stream, chunks: list[tuple[float, int]]) -> list[float]:
    times, k = [], 0
    for _, end in chunks:
        while stream.reads[k][1] < end:
            k += 1
        times.append(stream.reads[k][0])
    return times


def schedule_errors_ms(arrivals: list[float], chunks: list[tuple[float, int]]) -> list[float]:
    t0, a0 = chunks[0][0], arrivals[0]
    return [abs((a - a0) - (t - t0)) * 1e3 for a, (t, _) in zip(arrivals, chunks, strict=True)]


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def check_reply(rec: Recording, stream: Stream) -> None:
    if stream.body is not None and stream.body != rec.sse_bytes():
        raise SystemExit("FAIL: the body received differs from the recording's events")
    if stream.text is not None and stream.text != expected_text(rec):
        raise SystemExit(f"FAIL: the SDK's reply differs from the recording's: {stream.text[:60]!r}...")
    expected = len(chunk_events(rec))
    if stream.sdk is not None and len(stream.sdk) != expected:
        raise SystemExit(f"FAIL: the SDK yielded {len(stream.sdk)} chunks, the recording has {expected}")


# --- the three ways of receiving ---------------------------------------------------


def sdk_stream(client: openai.OpenAI, transport: _TimedTransport, body: dict) -> Stream:
    sdk, parts = [], []
    start = time.perf_counter()
    for chunk in client.chat.completions.create(**body):
        sdk.append(time.perf_counter())
        parts.append((chunk.choices[0].delta.content or "") if chunk.choices else "")
    reads, raw = _reads(transport.log)
    return Stream(start, reads, raw, sdk, "".join(parts))


async def async_sdk_streams(base_url: str, body: dict, n: int) -> list[Stream]:
    async with openai.AsyncOpenAI(base_url=base_url, api_key="replay") as client:

        async def one(headers: dict[str, str] | None = None) -> Stream:
            sdk, parts = [], []
            start = time.perf_counter()
            async for chunk in await client.chat.completions.create(**body, extra_headers=headers):
                sdk.append(time.perf_counter())
                parts.append((chunk.choices[0].delta.content or "") if chunk.choices else "")
            return Stream(start, [], None, sdk, "".join(parts))

        await asyncio.gather(*(one(WARM) for _ in range(n)))
        return await asyncio.gather(*(one() for _ in range(n)))


async def async_byte_streams(base_url: str, body: dict, n: int) -> list[Stream]:
    limits = httpx2.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx2.AsyncClient(base_url=base_url, limits=limits, timeout=60) as http:

        async def one(headers: dict[str, str] | None = None) -> Stream:
            log = []
            start = time.perf_counter()
            async with http.stream("POST", "/chat/completions", json=body, headers=headers) as response:
                async for part in response.aiter_raw():
                    log.append((time.perf_counter(), part))
            reads, raw = _reads(log)
            return Stream(start, reads, raw)

        await asyncio.gather(*(one(WARM) for _ in range(n)))
        return await asyncio.gather(*(one() for _ in range(n)))


# --- the server ----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, recordings: str | None) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "streamscope", "serve", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--speed", "1", *(["--recordings", recordings] if recordings else [])]
    print("server: python", " ".join(command[1:]))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    print("server says:", proc.stdout.readline().strip())
    return proc


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- report ----------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def ttft_line(streams: list[Stream]) -> tuple[str, bool]:
    ttfts = [(s.sdk[0] if s.sdk else s.reads[0][0]) - s.start for s in streams]
    ok = all(abs(t - TARGET_TTFT_S) <= TARGET_TTFT_TOLERANCE_S for t in ttfts)
    text = f"TTFT {min(ttfts) * 1e3:.1f} .. {max(ttfts) * 1e3:.1f} ms "
    text += f"(seed 100 ms, target +-10 ms: {verdict(ok)})"
    return text, ok


def errors_line(label: str, per_stream: list[list[float]], target_ms: float | None) -> tuple[str, bool]:
    p99s = [p99(e) for e in per_stream]
    everything = [x for e in per_stream for x in e]
    worst = max(p99s)
    text = (
        f"schedule error, {label}: p50 {statistics.median(everything):.3f} ms, "
        f"p99 {statistics.median(p99s):.3f} ms (worst stream {worst:.3f} ms = {worst / 10:.1%} of the "
        f"recording's 10 ms resolution), max {max(everything):.3f} ms"
    )
    if target_ms is None:
        return text, True
    ok = worst <= target_ms
    return f"{text}; target p99 <= {target_ms:g} ms on each stream: {verdict(ok)}", ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--recording", default=SEED, help="recording name (default: %(default)s)")
    parser.add_argument("--recordings", default=None, help="folder of recordings (default: the package's)")
    parser.add_argument("--runs", type=int, default=5, help="one-stream runs (default: %(default)s)")
    parser.add_argument("--streams", type=int, default=20, help="concurrent streams (default: %(default)s)")
    args = parser.parse_args(argv)

    rec = load_recording(args.recording, Path(args.recordings) if args.recordings else RECORDINGS_DIR)
    chunks = chunk_events(rec)
    body = dict(rec.request["body"])
    print(f"recording: {rec.label}")
    print(
        f"  {len(chunks)} chunks at {len({t for t, _ in chunks})} distinct moments, last at {chunks[-1][0]} s"
    )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} CPUs, load average {load} (other work here shows in the figures)")
    port = _free_port()
    server = start_server(port, args.recordings)
    base_url = f"http://127.0.0.1:{port}/v1"
    results: list[bool] = []
    try:
        transport = _TimedTransport()
        client = openai.OpenAI(
            base_url=base_url, api_key="replay", http_client=httpx2.Client(transport=transport)
        )
        cpu = time.process_time()
        check_reply(rec, sdk_stream(client.with_options(default_headers=WARM), transport, body))
        sdk_cost_ms = (time.process_time() - cpu) / len(chunks) * 1e3
        singles = [sdk_stream(client, transport, body) for _ in range(args.runs)]
        for s in singles:
            check_reply(rec, s)
        print(
            f"\none stream, official SDK (sync), {args.runs} runs: reply identical, {len(chunks)} chunks each"
        )
        for text, ok in (
            ttft_line(singles),
            errors_line(
                "wire",
                [schedule_errors_ms(wire_times(s, chunks), chunks) for s in singles],
                TARGET_ONE_STREAM_P99_MS,
            ),
            errors_line("SDK", [schedule_errors_ms(s.sdk or [], chunks) for s in singles], None),
        ):
            print("  " + text)
            results.append(ok)
        print(f"  the SDK's own cost: {sdk_cost_ms:.3f} ms of CPU per chunk (warm-up stream, whole client)")

        cpu_before, wall = cpu_seconds(server.pid), time.perf_counter()
        byte_streams = asyncio.run(async_byte_streams(base_url, body, args.streams))
        server_load = (cpu_seconds(server.pid) - cpu_before) / (time.perf_counter() - wall)
        for s in byte_streams:
            check_reply(rec, s)
        print(f"\n{args.streams} concurrent streams, httpx2 (async, bytes only): bodies identical")
        for text, ok in (
            ttft_line(byte_streams),
            errors_line(
                "wire",
                [schedule_errors_ms(wire_times(s, chunks), chunks) for s in byte_streams],
                TARGET_CONCURRENT_P99_MS,
            ),
        ):
            print("  " + text)
            results.append(ok)
        print(f"  server CPU while serving them: {server_load:.0%} of one core (warm-up included)")

        sdk_streams = asyncio.run(async_sdk_streams(base_url, body, args.streams))
        for s in sdk_streams:
            check_reply(rec, s)
        print(f"\n{args.streams} concurrent streams, official SDK (async): replies identical")
        text, _ = ttft_line(sdk_streams)
        print("  " + text + " (not a target: one process parses all the streams)")
        print(
            "  " + errors_line("SDK", [schedule_errors_ms(s.sdk or [], chunks) for s in sdk_streams], None)[0]
        )
        print(
            f"  the client must parse {args.streams * len(chunks)} chunks at ~{sdk_cost_ms:.2f} ms each = "
            f"{args.streams * len(chunks) * sdk_cost_ms / 1e3:.1f} s of CPU in a {chunks[-1][0]:.2f} s stream"
        )
    finally:
        server.terminate()
        server.wait(timeout=10)
    print("\nall targets met" if all(results) else "\nsome targets missed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
