"""Does drawing the live chart distort the chunk timestamps it shows?

Replays the seed's count-to-100 stream (302 chunks, OpenAI's 2023 timings) from the replay
server at speed 1 through the real openai SDK, several times each way, interleaved, and times
every chunk:

* chart off (the peer): a plain loop through ``StreamTimer.track``;
* chart on: ``LiveChart.run``, its widget updates really computed (and, in a kernel, serialized
  and sent on IOPub; no browser is attached), with the GIL switch interval run() sets;
* chart on, default switch interval (5 ms): what run() would measure without lowering it.

Errors per chunk, each |its offset from the first chunk - the reference's offset of that
chunk from the first|, with p50 and p99 per way and the chart's cost, on minus off (target: at
most 1 ms at p99):

* schedule error: the reference is the recording (what the notebook shows against);
* delivery error: the reference is when the server actually wrote the chunk (logged in the server
  process on the same monotonic clock), which takes the server's own lateness out and leaves
  what happens in the client: the network stack, the SDK, and the chart;
* the same for the first chunk of each write only. Chunks recorded at the same moment go out in
  one write and the SDK parses them one after another, so the last chunks of the seed's bursts
  (30 and 60 chunks, at 2.10 s and 2.25 s) always make the p99 above: how fast the CPU gets
  through a burst, not what the chart does. A write's first chunk is timed right after its read;
  if a redraw holds the GIL when it arrives, it shows here.

By default the measurement runs inside a Jupyter kernel, as in a notebook (reader thread and
redraws in the kernel process, widget messages serialized and published; no frontend reads them,
so that no process here spends CPU on them during the replays); ``--in-process`` runs it
in this process instead, where widget messages go nowhere (no comm), so redraws cost less.
The replay server runs in its own process, so that only the chart competes with the reader;
``--server thread`` uses the notebooks' default instead (the shared replay server in a thread
of the measuring process, competing for the GIL too; no delivery error then).

Last, the mechanism itself, without a server or the SDK (``--gil-only`` runs just this): a thread
blocked on a socket, as the reader is, woken by bytes another process sends every 7 ms, while this
process's main thread is idle or redraws a LiveChart nonstop (the worst case of the throttled
updater), at the default switch interval and at the one run() sets. Wake-up latency = when the
thread had the byte minus when it was sent, on the same monotonic clock.

    .venv/bin/python benchmarks/live_chart.py [--reps 5] [--in-process] [--server thread] [--gil-only]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

RECORDING = "seed-chat-count-to-100-stream"
WAYS = ("chart off", "chart on", "chart on, 5 ms switch interval")

# The replay server, run in its own process, logging when each write leaves it. Benchmark-side
# instrumentation: it wraps the server's paced event generator without changing it.
_LOGGING_SERVER = """
import json, sys, time
from streamscope import replay
from streamscope.replay import sending

paced = sending._paced_events

async def logged(*args, **kwargs):
    sends = []
    try:
        async for piece in paced(*args, **kwargs):
            sends.append((time.perf_counter(), piece.count(b"data: {")))
            yield piece
    finally:
        print("SENDS " + json.dumps(sends), flush=True)

sending._paced_events = logged
server = replay.ReplayServer(speed=1.0).start()
print("URL " + server.base_url, flush=True)
sys.stdin.read()  # serve until the benchmark closes stdin
server.stop()
"""


# Sends one byte every 7 ms to the port in argv[1], argv[2] times; prints when it sent each.
_PINGER = """
import json, socket, sys, time
sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
sent = []
for _ in range(int(sys.argv[2])):
    time.sleep(0.007)
    sent.append(time.perf_counter())
    sock.sendall(b"x")
sock.close()
print(json.dumps(sent))
"""


def _wakeup_latencies_ms(switch_interval: float | None, pings: int = 400) -> list[float]:
    """Wake-up latencies of a socket-blocked thread while the main thread redraws nonstop (or idles).

    The redraws are those of charts that each grow to the seed's 302 chunks, one after another.
    """
    import socket

    from streamscope.charts import TimelineView
    from streamscope.timing import StreamTimer

    def charts() -> Iterator[tuple[TimelineView, StreamTimer, Iterator[dict]]]:
        for _ in range(pings):  # far more than are needed
            view = TimelineView("benchmark", baseline_seconds=3.03, baseline_tokens=301)
            timer = StreamTimer().start()
            chunk = {"choices": [{"index": 0, "delta": {"content": "1, "}}]}
            yield view, timer, timer.track(chunk for _ in range(302))

    # Built before the pinger starts, and their garbage collected: building charts is not what a
    # run's updater does (its allocations set off full collections of 40-170 ms, measured).
    ready = list(itertools.islice(charts(), 64)) if switch_interval is not None else []
    gc.collect()
    listener = socket.create_server(("127.0.0.1", 0))
    pinger = subprocess.Popen(
        [sys.executable, "-c", _PINGER, str(listener.getsockname()[1]), str(pings)],
        stdout=subprocess.PIPE,
        text=True,
    )
    connection, _ = listener.accept()
    received: list[float] = []

    def read() -> None:  # one byte per ping; bytes that arrived together are read back to back
        while connection.recv(1):
            received.append(time.perf_counter())

    reader = threading.Thread(target=read)
    previous = sys.getswitchinterval()
    try:
        if switch_interval is not None:
            sys.setswitchinterval(switch_interval)
        reader.start()
        for view, timer, chunks in ready:
            for _ in chunks:  # a new chunk, then a real redraw of the chart so far
                view.draw(timer.since(view.chunks))
                if not reader.is_alive():
                    break
            if not reader.is_alive():
                break
        else:
            if switch_interval is not None:
                raise SystemExit("the prepared charts ran out before the pings did")
        reader.join()
    finally:
        sys.setswitchinterval(previous)
        connection.close()
        listener.close()
    sent = json.loads(pinger.communicate()[0])
    return [1000 * (r - s) for r, s in zip(received, sent, strict=True)]


def _report_wakeups() -> None:
    print("wake-up latency of a socket-blocked thread, bytes sent every 7 ms by another process:")
    print(f"  {'':44} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    from streamscope.reader import READER_SWITCH_INTERVAL_S

    for label, interval in (
        ("main thread idle", None),
        ("main thread redrawing, 5 ms switch interval", 0.005),
        (
            f"main thread redrawing, {READER_SWITCH_INTERVAL_S * 1000:g} ms (run()'s)",
            READER_SWITCH_INTERVAL_S,
        ),
    ):
        gc.collect()
        latencies = _wakeup_latencies_ms(interval)
        print(
            f"  {label:44} {_percentile(latencies, 50):8.3f} {_percentile(latencies, 99):8.3f} "
            f"{max(latencies):8.3f}"
        )


def _replayed_offsets(create: Any, way: str) -> tuple[list[float], dict[str, Any]]:
    """One replay of the stream timed one way: the chunk offsets and what the chart did."""
    from streamscope import charts, reader
    from streamscope.timing import StreamTimer

    if way == "chart off":
        timer = StreamTimer().start()
        for _ in timer.track(create()):
            pass
        return timer.timeline.offsets, {}
    chart = charts.LiveChart(title="benchmark", baseline_seconds=3.03, baseline_tokens=301)
    draw_seconds: list[float] = []
    draw = chart.update

    def timed_draw() -> None:  # benchmark-side instrumentation: how long each redraw holds the updater
        began = time.perf_counter()
        draw()
        draw_seconds.append(time.perf_counter() - began)

    chart.update = timed_draw
    if "ipykernel" in sys.modules:
        chart.display()  # as a notebook does; outside a kernel there is nothing to display to
    default_interval = reader.READER_SWITCH_INTERVAL_S
    if way == "chart on, 5 ms switch interval":
        reader.READER_SWITCH_INTERVAL_S = sys.getswitchinterval()
    try:
        timeline = chart.run(create)
    finally:
        reader.READER_SWITCH_INTERVAL_S = default_interval
    return timeline.offsets, {"updates": chart.updates, "draw_ms": [1000 * s for s in draw_seconds]}


def measure(reps: int, base_url: str | None) -> dict[str, Any]:
    """One warm-up replay, then every way ``reps`` times, interleaved: the offsets of each replay.

    ``base_url``: a replay server running elsewhere; None uses the notebooks' default backend,
    the shared replay server in a thread of this process.
    """
    import streamscope
    from streamscope.recording import load_recording

    body = {k: v for k, v in load_recording(RECORDING).request["body"].items() if k != "stream"}
    client = streamscope.client(backend=base_url or "replay", speed=1.0, max_retries=0)

    def create() -> Any:
        return client.chat.completions.create(**body, stream=True)

    replays: list[tuple[str, list[float]]] = []
    updates: list[int] = []
    draw_ms: list[float] = []
    full_gc_ms: dict[str, list[float]] = {way: [] for way in WAYS}
    collecting: dict[str, float] = {}

    def time_full_collections(phase: str, info: dict[str, int]) -> None:  # a full pass stalls every thread
        if info["generation"] == 2 and collecting.get("replaying"):
            if phase == "start":
                collecting["since"] = time.perf_counter()
            elif "since" in collecting:
                full_gc_ms[way].append(1000 * (time.perf_counter() - collecting.pop("since")))

    # The order of the ways rotates from one round to the next, so that none always follows another.
    order = [WAYS[(i + r) % len(WAYS)] for r in range(reps) for i in range(len(WAYS))]
    # Warm-up, one replay without and one with the chart: connection, imports, first-use costs.
    for warm_up in ("chart off", "chart on"):
        gc.collect()
        replays.append(("warm-up", _replayed_offsets(create, warm_up)[0]))
    gc.callbacks.append(time_full_collections)
    try:
        for way in order:
            gc.collect()  # the previous replay's garbage (a whole chart) is not collected during this one
            collecting["replaying"] = True
            offsets, chart = _replayed_offsets(create, way)
            collecting["replaying"] = False
            replays.append((way, offsets))
            if way == "chart on":
                updates.append(chart["updates"])
                draw_ms += chart["draw_ms"]
    finally:
        gc.callbacks.remove(time_full_collections)
    return {
        "replays": replays,
        "updates": updates,
        "draw_ms": draw_ms,
        "full_gc_ms": full_gc_ms,
        "python": sys.version.split()[0],
    }


def _in_kernel(reps: int, base_url: str | None) -> dict[str, Any]:
    """Run :func:`measure` in a fresh Jupyter kernel of this Python, with no frontend reading its output.

    The widget messages are still serialized and published; nobody subscribes, so no process of this
    machine spends CPU parsing them during the replays (a browser would, on its own machine).
    """
    from jupyter_client.manager import start_new_kernel

    kernel, client = start_new_kernel(kernel_name="python3")
    client.iopub_channel.stop()
    with tempfile.TemporaryDirectory() as folder:
        result = Path(folder) / "result.json"
        code = (
            "import json, pathlib, runpy\n"
            f"_bench = runpy.run_path({str(Path(__file__).resolve())!r}, run_name='live_chart_in_kernel')\n"
            f"pathlib.Path({str(result)!r}).write_text(json.dumps(_bench['measure']({reps}, {base_url!r})))\n"
        )
        try:
            msg_id = client.execute(code)
            while (reply := client.get_shell_msg(timeout=1200))["parent_header"].get("msg_id") != msg_id:
                pass
            if reply["content"]["status"] != "ok":
                raise SystemExit("the kernel failed:\n" + "\n".join(reply["content"].get("traceback", [])))
        finally:
            client.stop_channels()
            kernel.shutdown_kernel(now=True)
        return json.loads(result.read_text())


@contextlib.contextmanager
def _logging_server() -> Iterator[tuple[str, list[list[tuple[float, bool]]]]]:
    """The replay server in its own process; yields its base URL and, per stream and chunk, when the
    server wrote it and whether it was the first chunk of its write."""
    server = subprocess.Popen(
        [sys.executable, "-c", _LOGGING_SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    sends: list[list[tuple[float, bool]]] = []

    def drain() -> None:  # keep the pipe empty so that the server never blocks on a print
        for line in server.stdout:
            if line.startswith("SENDS "):
                writes = json.loads(line.removeprefix("SENDS "))
                sends.append([(t, i == 0) for t, chunks in writes for i in range(chunks)])

    try:
        url = server.stdout.readline().removeprefix("URL ").strip()
        drainer = threading.Thread(target=drain, daemon=True)
        drainer.start()
        yield url, sends
    finally:
        server.stdin.close()
        server.wait(timeout=10)
        drainer.join(timeout=10)


def _errors_ms(offsets: list[float], reference: list[float], keep: list[bool] | None = None) -> list[float]:
    """|offset from the first chunk - reference offset from the first chunk| per chunk (kept ones)."""
    if len(offsets) != len(reference):
        raise SystemExit(f"{len(offsets)} chunks arrived, the reference has {len(reference)}")
    errors = [
        1000 * abs((t - offsets[0]) - (r - reference[0])) for t, r in zip(offsets, reference, strict=True)
    ]
    return errors if keep is None else [e for e, k in zip(errors, keep, strict=True) if k]


def _percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def _report(title: str, errors: dict[str, list[list[float]]]) -> None:
    """Print p50/p99 per way (pooled over replays), each replay's p99, and the chart's cost."""
    print(title)
    print(f"  {'':32} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}   p99 of each replay (ms) and their median")
    p99, median_p99 = {}, {}
    for way in WAYS:
        pooled = [e for replay in errors[way] for e in replay]
        per_replay = [_percentile(replay, 99) for replay in errors[way]]
        p99[way], median_p99[way] = _percentile(pooled, 99), statistics.median(per_replay)
        listed = " ".join(f"{v:.2f}" for v in per_replay)
        print(
            f"  {way:32} {_percentile(pooled, 50):8.3f} {p99[way]:8.3f} {max(pooled):8.3f}   "
            f"{listed}; median {median_p99[way]:.2f}"
        )
    for way in WAYS[1:]:
        cost, typical = p99[way] - p99["chart off"], median_p99[way] - median_p99["chart off"]
        verdict = "within" if cost <= 1.0 else "OVER"
        print(
            f"  {way} - chart off: {cost:+.3f} ms at p99 ({verdict} the 1 ms budget), "
            f"{typical:+.3f} ms between the medians of the replays' p99"
        )


def main() -> None:
    from streamscope.recording import load_recording
    from streamscope.timing import Timeline

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="replays per way (default 5)")
    parser.add_argument("--in-process", action="store_true", help="measure in this process, not in a kernel")
    parser.add_argument(
        "--server",
        choices=("process", "thread"),
        default="process",
        help="replay server in its own process (default) or in a thread beside the measurement",
    )
    parser.add_argument("--gil-only", action="store_true", help="only the wake-up latency measurement")
    args = parser.parse_args()
    if args.gil_only:
        _report_wakeups()
        return
    recorded = Timeline.from_recording(load_recording(RECORDING)).offsets
    with contextlib.ExitStack() as stack:
        base_url, sends = stack.enter_context(_logging_server()) if args.server == "process" else (None, [])
        result = measure(args.reps, base_url) if args.in_process else _in_kernel(args.reps, base_url)
    replays = result["replays"]
    where = "in this process (no comm)" if args.in_process else "in a Jupyter kernel (no browser attached)"
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(
        f"{RECORDING}: {len(recorded)} chunks, {args.reps} replays per way at speed 1 (interleaved), "
        f"measured {where}, replay server in a {args.server}; Python {result['python']}, "
        f"{os.cpu_count()} CPUs, load average {load}"
    )
    draws = result["draw_ms"]
    print(
        f"chart on: {statistics.mean(result['updates']):.0f} redraws per replay, each "
        f"{statistics.median(draws):.2f} ms median, {max(draws):.2f} ms max (time in the updater)"
    )
    pauses = "; ".join(
        f"{way}: {len(ms)}" + (f" (longest {max(ms):.0f} ms)" if ms else "")
        for way, ms in result["full_gc_ms"].items()
    )
    print(f"full garbage collections during the replays (each stalls every thread): {pauses}")
    schedule = {way: [_errors_ms(o, recorded) for w, o in replays if w == way] for way in WAYS}
    _report("schedule error (reference: the recording's offsets):", schedule)
    if sends:
        if len(sends) != len(replays):
            raise SystemExit(f"the server logged {len(sends)} streams for {len(replays)} replays")
        paired = [
            (way, offsets, [t for t, _ in sent], [first for _, first in sent])
            for (way, offsets), sent in zip(replays, sends, strict=True)
        ]
        delivery = {way: [_errors_ms(o, t) for w, o, t, _ in paired if w == way] for way in WAYS}
        _report("delivery error (reference: when the server wrote each chunk):", delivery)
        first = {way: [_errors_ms(o, t, f) for w, o, t, f in paired if w == way] for way in WAYS}
        writes = statistics.mean(sum(firsts) for *_, firsts in paired)
        _report(f"delivery error of the first chunk of each write ({writes:.0f} of {len(recorded)}):", first)
    _report_wakeups()


if __name__ == "__main__":
    main()
