"""Assembly speed: microseconds per chunk, ours against the SDK's accumulator and the json.loads floor.

Streams: the seed's count-to-100 chat stream (the recording
``seed-chat-count-to-100-stream``, 302 chunks) and the longest stream of the shared
conformance corpus (when ``../shared/conformance`` is there). For each:

- ours, raw SSE: ``assemble_sse(body)``: SSE decoding, ``json.loads`` and assembly,
  the body given whole and as one network read per recorded event;
- ours, SDK objects: ``Assembler.feed`` on ``ChatCompletionChunk`` objects that were
  built beforehand (as the SDK's stream builds them): the cost of feeding them;
- json.loads floor: ``json.loads`` of each event's data, already cut out of the body;
- peer, SDK from raw SSE: what ``client.chat.completions.stream()`` does per chunk:
  openai's SSE decoder, ``json.loads``, ``construct_type(ChatCompletionChunk)`` and
  ``ChatCompletionStreamState.handle_chunk``;
- peer, SDK accumulator alone: ``handle_chunk`` on chunk objects built beforehand.

Each figure is the best of 40 runs (time.perf_counter), divided by the number of
chunks; the runs of all candidates are interleaved, round by round. Targets: ours
from raw SSE >= 20x faster than the SDK from raw SSE and within 2x of the json.loads
floor; ours from SDK objects <= 3 us per chunk. Startup: wall time of
``python -m streamscope assemble FILE`` against ``python -c pass`` and
``python -c "import openai"``, median of 7 interleaved runs.

Run: ``.venv/bin/python benchmarks/assemble.py`` (about a minute).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

from openai._models import construct_type
from openai._streaming import SSEDecoder as OpenAISSEDecoder
from openai.lib.streaming.chat._completions import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk
from streamscope.assemble import Assembler, assemble_sse
from streamscope.recording import load_recording
from streamscope.sse import SSEDecoder

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "conformance" / "openai-streams"


def race(candidates: dict[str, Callable[[], object]], chunks: int, rounds: int = 40) -> dict[str, float]:
    """Best microseconds per chunk of each candidate over ``rounds`` interleaved rounds.

    The machine is shared: timing the candidates in turn, round after round, lets a busy
    moment hit all of them alike instead of spoiling one figure.
    """
    timers = {name: timeit.Timer(fn) for name, fn in candidates.items()}
    numbers = {name: max(1, timer.autorange()[0] // 40) for name, timer in timers.items()}  # ~5 ms runs
    best = dict.fromkeys(candidates, float("inf"))
    for _ in range(rounds):
        for name, timer in timers.items():
            best[name] = min(best[name], timer.timeit(numbers[name]) / numbers[name])
    return {name: seconds / chunks * 1e6 for name, seconds in best.items()}


def datas(body: bytes) -> list[str]:
    decoder = SSEDecoder()
    return [e.data for e in decoder.feed(body) + decoder.close() if not e.data.startswith("[DONE]")]


def sdk_from_raw(body: bytes) -> Any:
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    for sse in OpenAISSEDecoder().iter_bytes(iter([body])):
        if sse.data.startswith("[DONE]"):
            break
        state.handle_chunk(construct_type(type_=ChatCompletionChunk, value=json.loads(sse.data)))
    return state.current_completion_snapshot


def sdk_accumulate(chunks: list[ChatCompletionChunk]) -> Any:
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    for chunk in chunks:
        state.handle_chunk(chunk)
    return state.current_completion_snapshot


def feed_objects(chunks: list[Any]) -> dict[str, Any]:
    assembler = Assembler()
    for chunk in chunks:
        assembler.feed(chunk)
    return assembler.snapshot()


def bench_stream(label: str, body: bytes, reads: list[bytes]) -> dict[str, float]:
    events = datas(body)
    n = len(events)
    models = [construct_type(type_=ChatCompletionChunk, value=json.loads(d)) for d in events]
    # The same answer from every path, or the timings compare different work.
    ours = assemble_sse(body).object
    assert ours["choices"][0]["message"]["content"] == sdk_from_raw(body).choices[0].message.content
    assert feed_objects(models)["choices"] == ours["choices"]
    loads = json.loads
    figures = race(
        {
            "ours, raw SSE (whole body)": lambda: assemble_sse(body),
            "ours, raw SSE (a read per event)": lambda: assemble_sse(iter(reads)),
            "ours, SDK objects": lambda: feed_objects(models),
            "json.loads floor": lambda: [loads(d) for d in events],
            "SDK from raw SSE": lambda: sdk_from_raw(body),
            "SDK accumulator alone": lambda: sdk_accumulate(models),
        },
        n,
    )
    print(f"\n{label}: {n} chunks, {len(body)} bytes")
    for name, us in figures.items():
        print(f"  {name:34s} {us:8.2f} us/chunk")
    raw, floor = figures["ours, raw SSE (whole body)"], figures["json.loads floor"]
    per_read = figures["ours, raw SSE (a read per event)"]
    ratios = [
        ("SDK from raw SSE / ours from raw SSE", figures["SDK from raw SSE"] / raw, "target >= 20x"),
        ("SDK accumulator alone / ours from raw SSE", figures["SDK accumulator alone"] / raw, ""),
        ("ours from raw SSE / json.loads floor", raw / floor, "target <= 2x"),
        ("ours, a read per event / json.loads floor", per_read / floor, ""),
    ]
    for name, ratio, target in ratios:
        print(f"  {name:44s} {ratio:6.2f}x  {target}")
    print(f"  {'ours from SDK objects':44s} {figures['ours, SDK objects']:6.2f} us/chunk  target <= 3 us")
    return figures


def startup(path: Path) -> None:
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -m streamscope assemble FILE": [sys.executable, "-m", "streamscope", "assemble", str(path)],
        "python -c 'import openai'": [sys.executable, "-c", "import openai"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(7):
        for name, args in commands.items():
            start = time.perf_counter()
            subprocess.run(args, check=False, capture_output=True)
            times[name].append(time.perf_counter() - start)
    bare = statistics.median(times["python -c pass"])
    print("\nstartup (median of 7 wall times):")
    for name, runs in times.items():
        median = statistics.median(runs)
        print(f"  {name:36s} {median * 1e3:7.1f} ms  (+{(median - bare) * 1e3:.1f} ms over python -c pass)")


def main() -> None:
    seed = load_recording("seed-chat-count-to-100-stream")
    print(f"Python {sys.version.split()[0]}; stream: {seed.label}")
    seed_body = seed.sse_bytes()
    bench_stream(seed.name, seed_body, [e.raw.encode() for e in seed.events or []])
    streams = sorted(CORPUS.glob("*.sse"), key=lambda p: len(datas(p.read_bytes())))
    if streams:
        longest = streams[-1]
        body = longest.read_bytes()
        bench_stream(f"conformance {longest.stem}", body, [b + b"\n\n" for b in body.split(b"\n\n") if b])
    else:
        print(f"\n(no conformance corpus at {CORPUS}: skipped)")
    with tempfile.NamedTemporaryFile(suffix=".sse") as file:
        file.write(seed_body)
        file.flush()
        startup(Path(file.name))


if __name__ == "__main__":
    main()
