"""Does drawing the live chart distort the chunk timestamps it shows?

Replays the seed's count-to-100 stream (302 chunks, OpenAI's 2023 timings) from the replay
server at speed 1 through the real openai SDK, several times each way, and times every chunk:

* chart off (the peer): a plain loop through ``StreamTimer.track``;
* chart on: ``LiveChart.run``, its widget updates really computed (and, in a kernel, serialized
  and sent on IOPub; no browser is attached), with the GIL switch interval run() sets;
* chart on, default switch interval (5 ms): what run() would measure without lowering it.

For every chunk, the schedule error is its offset from the first chunk minus the recording's
offset of that chunk from the first one. It prints p50 and p99 of |schedule error| per way, and
the chart's cost: on minus off (target: at most 1 ms at p99).

By default the measurement runs inside a Jupyter kernel, as in a notebook (reader thread and
redraws in the kernel process, widget messages serialized and sent); ``--in-process`` runs it
in this process instead, where widget messages go nowhere (no comm), so redraws cost less.
The replay server runs in its own process (``python -m streamscope serve``), so that only the
chart competes with the reader; ``--server thread`` uses the notebooks' default instead (the
shared replay server in a thread of the measuring process, competing for the GIL too).

    .venv/bin/python benchmarks/live_chart.py [--reps 5] [--in-process] [--server thread]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

RECORDING = "seed-chat-count-to-100-stream"
WAYS = ("chart off", "chart on", "chart on, 5 ms switch interval")


def _replayed_offsets(create: Any, way: str) -> tuple[list[float], dict[str, Any]]:
    """One replay of the stream timed one way: the chunk offsets and what the chart did."""
    from streamscope import live
    from streamscope.timing import StreamTimer

    if way == "chart off":
        timer = StreamTimer().start()
        for _ in timer.track(create()):
            pass
        return timer.timeline.offsets, {}
    chart = live.LiveChart(title="benchmark", baseline_seconds=3.03, baseline_tokens=301)
    draw_seconds: list[float] = []
    draw = chart._draw

    def timed_draw() -> None:  # benchmark-side instrumentation: how long each redraw holds the updater
        began = time.perf_counter()
        draw()
        draw_seconds.append(time.perf_counter() - began)

    chart._draw = timed_draw
    if "ipykernel" in sys.modules:
        chart.display()  # as a notebook does; outside a kernel there is nothing to display to
    default_interval = live.READER_SWITCH_INTERVAL_S
    if way == "chart on, 5 ms switch interval":
        live.READER_SWITCH_INTERVAL_S = sys.getswitchinterval()
    try:
        timeline = chart.run(create)
    finally:
        live.READER_SWITCH_INTERVAL_S = default_interval
    return timeline.offsets, {"updates": chart.updates, "draw_ms": [1000 * s for s in draw_seconds]}


def measure(reps: int, base_url: str | None) -> dict[str, Any]:
    """Run every way ``reps`` times, interleaved, and return the schedule errors in ms.

    ``base_url``: a replay server running elsewhere; None uses the notebooks' default backend,
    the shared replay server in a thread of this process.
    """
    import streamscope
    from streamscope.recording import load_recording
    from streamscope.timing import Timeline

    recording = load_recording(RECORDING)
    recorded = Timeline.from_recording(recording).offsets
    body = {k: v for k, v in recording.request["body"].items() if k != "stream"}
    errors: dict[str, list[float]] = {way: [] for way in WAYS}
    rep_p99: dict[str, list[float]] = {way: [] for way in WAYS}
    updates: list[int] = []
    draw_ms: list[float] = []
    client = streamscope.client(backend=base_url or "replay", speed=1.0, max_retries=0)

    def create() -> Any:
        return client.chat.completions.create(**body, stream=True)

    _replayed_offsets(create, "chart off")  # warm up: connection, imports, first-use costs
    for _ in range(reps):
        for way in WAYS:
            offsets, chart = _replayed_offsets(create, way)
            if len(offsets) != len(recorded):
                raise SystemExit(f"{way}: {len(offsets)} chunks arrived, the recording has {len(recorded)}")
            rep = [
                1000 * abs((t - offsets[0]) - (r - recorded[0]))
                for t, r in zip(offsets, recorded, strict=True)
            ]
            errors[way] += rep
            rep_p99[way].append(_percentile(rep, 99))
            if way == "chart on":
                updates.append(chart["updates"])
                draw_ms += chart["draw_ms"]
    return {
        "chunks": len(recorded),
        "reps": reps,
        "errors_ms": errors,
        "rep_p99_ms": rep_p99,
        "updates": updates,
        "draw_ms": draw_ms,
        "python": sys.version.split()[0],
    }


def _percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if q < 100 else max(values)


@contextlib.contextmanager
def _server_process() -> Iterator[str]:
    """``python -m streamscope serve`` at speed 1 on a free loopback port; yields its base URL."""
    server = subprocess.Popen(
        [sys.executable, "-m", "streamscope", "serve", "--speed", "1"], stdout=subprocess.PIPE, text=True
    )
    try:
        line = server.stdout.readline()  # "... listening on http://127.0.0.1:PORT/v1 (...)"
        yield next(word for word in line.split() if word.startswith("http://"))
    finally:
        server.terminate()
        server.wait(timeout=10)


def _in_kernel(reps: int, base_url: str | None) -> dict[str, Any]:
    """Run :func:`measure` in a fresh Jupyter kernel of this Python, reading its IOPub like a client."""
    from jupyter_client.manager import start_new_kernel

    kernel, client = start_new_kernel(kernel_name="python3")
    code = (
        "import json, runpy\n"
        f"_bench = runpy.run_path({str(Path(__file__).resolve())!r}, run_name='live_chart_in_kernel')\n"
        f"print('RESULT ' + json.dumps(_bench['measure']({reps}, {base_url!r})))\n"
    )
    try:
        msg_id = client.execute(code)
        output: list[str] = []
        while True:
            msg = client.get_iopub_msg(timeout=600)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream" and content["name"] == "stdout":
                output.append(content["text"])
            elif kind == "error":
                raise SystemExit("the kernel failed:\n" + "\n".join(content["traceback"]))
            elif kind == "status" and content["execution_state"] == "idle":
                break
    finally:
        client.stop_channels()
        kernel.shutdown_kernel(now=True)
    line = next(line for line in "".join(output).splitlines() if line.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="replays per way (default 5)")
    parser.add_argument("--in-process", action="store_true", help="measure in this process, not in a kernel")
    parser.add_argument(
        "--server",
        choices=("process", "thread"),
        default="process",
        help="replay server in its own process (default) or in a thread beside the measurement",
    )
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        base_url = stack.enter_context(_server_process()) if args.server == "process" else None
        result = measure(args.reps, base_url) if args.in_process else _in_kernel(args.reps, base_url)
    where = "in this process (no comm)" if args.in_process else "in a Jupyter kernel (no browser attached)"
    where += f", replay server in a {args.server}"
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(
        f"{RECORDING}: {result['chunks']} chunks, {result['reps']} replays per way at speed 1, "
        f"{where}, Python {result['python']}, {os.cpu_count()} CPUs, load average {load}"
    )
    print("schedule error = |chunk offset from the first chunk - recorded offset from the first chunk|")
    print(f"{'':34} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}   p99 of each replay (ms), median")
    p99, median_p99 = {}, {}
    for way in WAYS:
        errors, per_rep = result["errors_ms"][way], result["rep_p99_ms"][way]
        p99[way], median_p99[way] = _percentile(errors, 99), statistics.median(per_rep)
        listed = " ".join(f"{v:.2f}" for v in per_rep)
        print(
            f"{way:34} {_percentile(errors, 50):8.3f} {p99[way]:8.3f} {max(errors):8.3f}   "
            f"{listed}, median {median_p99[way]:.2f}"
        )
    draws = result["draw_ms"]
    print(
        f"chart on: {statistics.mean(result['updates']):.0f} redraws per replay; a redraw takes "
        f"{statistics.median(draws):.2f} ms median, {max(draws):.2f} ms max (in the updater)"
    )
    for way in WAYS[1:]:
        cost, typical = p99[way] - p99["chart off"], median_p99[way] - median_p99["chart off"]
        verdict = "within" if cost <= 1.0 else "OVER"
        print(
            f"{way} - chart off: {cost:+.3f} ms at p99 ({verdict} the 1 ms budget); "
            f"{typical:+.3f} ms between the medians of the replays' p99"
        )


if __name__ == "__main__":
    main()
