"""What watching a stream with StreamTimer costs per chunk, against what a client already pays.

Iterates the chunks of the seed's count-to-100 stream (302 chunks, parsed from the
recording) plainly and through ``StreamTimer.track`` / ``atrack``; the difference per chunk
is the timer's overhead. For scale it also times the work every client does per chunk
anyway: ``json.loads`` of the chunk's SSE data and the SDK's pydantic validation
(``ChatCompletionChunk.model_validate``). Best of several rounds, to damp a shared machine.

    .venv/bin/python benchmarks/timing.py
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable

from openai.types.chat import ChatCompletionChunk
from streamscope.recording import load_recording
from streamscope.timing import StreamTimer

ROUNDS = 7
PASSES = 200  # passes over the stream per round


def best_per_chunk(run: Callable[[], None], chunks_per_run: int) -> float:
    """Seconds per chunk of ``run``, best of ROUNDS rounds."""
    best = float("inf")
    for _ in range(ROUNDS):
        began = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - began)
    return best / chunks_per_run


def main() -> None:
    recording = load_recording("seed-chat-count-to-100-stream")
    payloads = [e.raw.removeprefix("data: ").strip() for e in recording.events or [] if "data: {" in e.raw]
    chunks = [json.loads(p) for p in payloads]
    n = len(chunks) * PASSES

    def plain() -> None:
        for _ in range(PASSES):
            for _chunk in chunks:
                pass

    def tracked() -> None:
        for _ in range(PASSES):
            timer = StreamTimer().start()
            for _chunk in timer.track(chunks):
                pass

    async def source() -> AsyncIterator[dict]:
        for chunk in chunks:
            yield chunk

    async def aplain() -> None:
        for _ in range(PASSES):
            async for _chunk in source():
                pass

    async def atracked() -> None:
        for _ in range(PASSES):
            timer = StreamTimer().start()
            async for _chunk in timer.atrack(source()):
                pass

    def parse() -> None:
        for payload in payloads:
            json.loads(payload)

    def validate() -> None:
        for chunk in chunks:
            ChatCompletionChunk.model_validate(chunk)

    sync_overhead = best_per_chunk(tracked, n) - best_per_chunk(plain, n)
    async_overhead = best_per_chunk(lambda: asyncio.run(atracked()), n) - best_per_chunk(
        lambda: asyncio.run(aplain()), n
    )
    json_cost = best_per_chunk(parse, len(payloads))
    sdk_cost = best_per_chunk(validate, len(chunks))
    gap = (recording.events[-1].t - recording.events[0].t) / (len(chunks) - 1)

    us = 1e6
    print(f"stream: {recording.name}, {len(chunks)} chunks, {PASSES} passes x best of {ROUNDS}")
    print(f"StreamTimer.track overhead:  {sync_overhead * us:7.3f} us/chunk")
    print(f"StreamTimer.atrack overhead: {async_overhead * us:7.3f} us/chunk")
    for peer, cost in (("json.loads of a chunk", json_cost), ("SDK model_validate", sdk_cost)):
        print(f"peer, {peer:<22} {cost * us:7.3f} us/chunk  track/peer {sync_overhead / cost:.1%}")
    print(f"mean gap between chunks:     {gap * us:7.0f} us        track/gap  {sync_overhead / gap:.4%}")


if __name__ == "__main__":
    main()
