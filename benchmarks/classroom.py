"""A classroom on one machine: notebook 01 run by N learners at once, each in a kernel of its own.

For each N (default 1, 5, 10, 20; ``--learners 1 5`` to choose), N copies of
``notebooks/01_streaming_chat_completions.ipynb`` run at once with nbclient, on the replay
backend, each in its own kernel (so each with its own replay server thread, as on a hub where
every learner has a server). A last cell, added to each copy and never saved, reports from
inside the kernel:

- the kernel's peak RSS (``getrusage``'s ``ru_maxrss``) and CPU seconds (user + system, every
  thread: the replay server and the reader run there too), over the whole run, start-up included;
- the TTFT the notebook measured (section 4's by-hand ``ttft`` and the chart's ``timeline``),
  against the recording's own (the seed's count-to-100 stream: 0.10 s);
- the replay lag p99 over every event its replay server sent (the sent log's ``sent_s`` against
  ``due_s``), and what the notebook's live chart said about it (``chart.lag.describe()``).

Per N it prints each kernel's line, then the median and worst over the kernels, the wall time
of the whole round, and how many charts said the machine was busy (``streamscope.lag``: p99
above 5 ms). The load average is printed before each round: on a shared machine the figures
are that machine's, not the package's.

Run: ``.venv/bin/python benchmarks/classroom.py --learners 1 5`` (about a minute per round).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from copy import deepcopy
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "01_streaming_chat_completions.ipynb"
MARK = "CLASSROOM-REPORT "

# Run in each kernel once the notebook has: what the learner's run cost and measured.
REPORT_CELL = f'''
import json, resource, statistics
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
}}))
'''


async def run_one(notebook: nbformat.NotebookNode, timeout_s: int) -> dict[str, Any]:
    """Execute one learner's copy in a kernel of its own; the report cell's figures."""
    copy = deepcopy(notebook)
    copy.cells.append(nbformat.v4.new_code_cell(REPORT_CELL))
    client = NotebookClient(
        copy,
        timeout=timeout_s,
        kernel_name="python3",  # ipykernel's own spec: this Python (the venv's)
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    await client.async_execute()
    for output in copy.cells[-1].outputs:
        text = output.get("text", "")
        if MARK in text:
            return json.loads(text.split(MARK, 1)[1])
    raise RuntimeError("the report cell printed nothing")


def _median_max(values: list[float]) -> str:
    return f"median {statistics.median(values):.2f}, max {max(values):.2f}"


async def run_round(notebook: nbformat.NotebookNode, learners: int, timeout_s: int) -> None:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\n{learners} learner(s) at once; load average before: {load} ({os.cpu_count()} CPUs)")
    wall = time.perf_counter()
    reports = await asyncio.gather(*(run_one(notebook, timeout_s) for _ in range(learners)))
    wall = time.perf_counter() - wall
    for i, r in enumerate(reports, 1):
        print(
            f"  kernel {i:>2}: peak RSS {r['rss_mb']:.0f} MB, CPU {r['cpu_s']:.1f} s, "
            f"TTFT {r['ttft_by_hand_s'] * 1000:.0f} ms by hand / {r['ttft_chart_s'] * 1000:.0f} ms chart "
            f"(recorded {r['ttft_recorded_s'] * 1000:.0f} ms), "
            f"replay lag p99 {r['replay_lag_p99_ms']:.2f} ms over {r['events']} events"
        )
        print(f"             the chart said: {r['chart_said']}")
    busy = sum(r["chart_busy"] for r in reports)
    errors = [abs(r["ttft_chart_s"] - r["ttft_recorded_s"]) * 1000 for r in reports]
    print(
        f"  per learner: peak RSS MB {_median_max([r['rss_mb'] for r in reports])}; "
        f"CPU s {_median_max([r['cpu_s'] for r in reports])}; "
        f"chart TTFT error ms {_median_max(errors)}; "
        f"replay lag p99 ms {_median_max([r['replay_lag_p99_ms'] for r in reports])}"
    )
    print(f"  charts that said the machine was busy: {busy} of {learners}; the round took {wall:.1f} s")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"  load average after: {load}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--learners", type=int, nargs="+", default=[1, 5, 10, 20], help="N per round (default: %(default)s)"
    )
    parser.add_argument("--timeout", type=int, default=300, help="seconds per cell (default: %(default)s)")
    args = parser.parse_args(argv)
    os.environ["STREAMSCOPE_BACKEND"] = "replay"  # inherited by every kernel
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    print(f"notebook: {NOTEBOOK.relative_to(ROOT)}, replay backend, kernel: {sys.executable}")
    for learners in args.learners:
        asyncio.run(run_round(notebook, learners, args.timeout))
    return 0


if __name__ == "__main__":
    sys.exit(main())
