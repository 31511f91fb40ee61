"""Peak memory of ``python -m streamscope assemble`` on a 200 MB stream, against the stream's size.

Two streams of about 200 MB each, written to a temporary folder:

- "small deltas": a chat stream of one-token content deltas, each chunk padded as
  Mistral pads its chunks (``p``), so the result (about 1.2 MB of text) is a small
  part of the input;
- "big deltas": 200 content deltas of 1 MB each, so the result is as large as the input.

For each, the peak resident set (``ru_maxrss`` from ``wait4``) of the command printing
to /dev/null, less that of the same command on a one-chunk stream (the interpreter
and imports). Before the command streamed its input it held the body, its lines and
their decoded data at once. To measure another version, run this file with
``PYTHONPATH`` pointing at that version's ``helpers`` folder.

Run: ``.venv/bin/python benchmarks/assemble_memory.py`` (about a minute; writes 400 MB to $TMPDIR).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MIB = 1 << 20
HEAD = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}


def event(content: str, pad: int = 0, finish_reason: str | None = None) -> bytes:
    choice = {"index": 0, "delta": {"content": content}, "logprobs": None, "finish_reason": finish_reason}
    chunk = {**HEAD, "choices": [choice], **({"p": "x" * pad} if pad else {})}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def write_stream(path: Path, body: bytes, repeat: int) -> int:
    with path.open("wb") as file:
        for _ in range(repeat):
            file.write(body)
        file.write(event("", finish_reason="stop") + b"data: [DONE]\n\n")
    return path.stat().st_size


def peak_kib(path: Path) -> tuple[int, float]:
    """Peak RSS (KiB) and wall time of the command on ``path``, its output thrown away."""
    command = [sys.executable, "-m", "streamscope", "assemble", str(path)]
    start = time.perf_counter()
    with open(os.devnull, "wb") as devnull:
        process = subprocess.Popen(command, stdout=devnull, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"exit {code}: {process.stderr.read().decode() if process.stderr else ''}")
    return usage.ru_maxrss, seconds


def main() -> None:
    where = os.environ.get("PYTHONPATH") or "this checkout"
    print(f"Python {sys.version.split()[0]}; streamscope from {where}")
    with tempfile.TemporaryDirectory() as folder:
        tiny = Path(folder) / "tiny.sse"
        write_stream(tiny, event("a"), 1)
        baseline, _ = peak_kib(tiny)
        print(f"one-chunk stream: peak {baseline / 1024:.0f} MiB (interpreter and imports)\n")
        small = event(" tok", pad=150) * 1000
        streams = {
            "small deltas": (small, 200 * MIB // len(small), 4 * 1000),
            "big deltas": (event("y" * MIB), 200, MIB),
        }
        for name, (body, repeat, result_per_repeat) in streams.items():  # content bytes per `body`
            path = Path(folder) / "stream.sse"
            size = write_stream(path, body, repeat)
            result = repeat * result_per_repeat
            peak, seconds = peak_kib(path)
            grown = (peak - baseline) * 1024
            print(
                f"{name}: {size / MIB:.0f} MiB in, {result / MIB:.1f} MiB of content out, {seconds:.1f} s\n"
                f"  peak {peak / 1024:.0f} MiB, {grown / MIB:.0f} MiB over the baseline: "
                f"{grown / size:.2f}x the input, {grown / result:.1f}x the result's text"
            )
            path.unlink()


if __name__ == "__main__":
    main()
