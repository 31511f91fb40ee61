"""When each chunk of a stream arrived, and the latency metrics the standard tools derive from it.

:class:`StreamTimer` wraps a stream (sync or async, SDK objects or dicts) and records, for
every chunk, its arrival offset on a monotonic clock (``time.perf_counter``) from the moment
the request was sent; it touches nothing else, so watching costs well under a microsecond
per chunk. The result is a :class:`Timeline`, which can also be rebuilt from a recording.
:class:`~streamscope.reader.StreamReader` runs a :class:`StreamTimer` off the caller's thread (or in
a task), so that the caller can draw what arrived while the stream goes on.

The benchmark tools disagree on what "time to first token" and "inter-token latency" mean,
so :meth:`Timeline.metrics` computes them under a named convention (see :data:`CONVENTIONS`):
the same timestamps give different figures under ``vllm``, ``genai-perf`` and ``llmperf``.
The default, ``streamscope``, times the first token at the first non-empty content, which is
what a user watching the text appear means by it.

What a chunk says (its text, whether it is output, its usage) is read by
:mod:`streamscope.chunks`. Timestamps of an SDK stream are taken when the SDK hands the chunk
over, after it has parsed it: that is when user code can show it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from itertools import pairwise
from typing import Any, TypeVar

from .chunks import DONE, NotJSON, model_of, sse_payloads, text_and_output, usage_output_tokens
from .errors import RecordingError
from .recording import Recording, event_bytes

__all__ = ["CONVENTIONS", "Convention", "LatencyMetrics", "StreamTimer", "Timeline"]

T = TypeVar("T")


@dataclass(frozen=True)
class LatencyMetrics:
    """Latency figures of one streamed response, all in seconds, under one convention.

    ``ttft`` is the time to first token as the convention defines it; ``time_to_first_chunk``
    is the arrival of the first chunk of any kind, whatever the convention. ``itl`` is the
    convention's list of inter-token (in practice inter-chunk) gaps; ``tpot`` its mean time
    per output token; ``e2el`` its end-to-end latency; ``tokens_per_s`` = output tokens /
    ``e2el``. ``output_tokens_source`` says where the token count came from: ``"usage"``
    (the stream's own usage), ``"tokenizer:<encoding>"``, ``"content_chunks"`` (one token per
    non-empty content chunk, when neither is available) or ``"given"``. A figure the stream
    cannot support (no content at all, a single token) is None.
    """

    convention: str
    time_to_first_chunk: float | None
    ttft: float | None
    itl: list[float]
    tpot: float | None
    e2el: float | None
    output_tokens: int
    output_tokens_source: str
    tokens_per_s: float | None


@dataclass(frozen=True)
class Convention:
    """A named definition of the metrics, with the source it follows."""

    name: str
    definition: str
    source: str
    compute: Callable[[Timeline, int], dict[str, Any]] = field(repr=False)


@dataclass(frozen=True)
class Timeline:
    """The chunks of one stream and their arrival offsets (seconds from the request).

    ``end`` is when the stream finished (the iterator was exhausted, or the recording's last
    event, ``[DONE]`` included, arrived); it is None for a stream that was abandoned or
    broke, and ``error`` then says how it broke.
    """

    offsets: list[float]
    chunks: list[Any]
    end: float | None = None
    error: str | None = None

    @cached_property
    def _described(self) -> list[tuple[str, bool]]:
        return [text_and_output(chunk) for chunk in self.chunks]

    @property
    def texts(self) -> list[str]:
        """Each chunk's generated text ("" for chunks with none)."""
        return [text for text, _ in self._described]

    @property
    def text(self) -> str:
        return "".join(self.texts)

    @property
    def content_offsets(self) -> list[float]:
        """Arrival offsets of the chunks with non-empty text."""
        return [t for t, (text, _) in zip(self.offsets, self._described, strict=True) if text]

    @property
    def output_offsets(self) -> list[float]:
        """Arrival offsets of the output chunks (non-empty ``choices``; Responses output events)."""
        return [t for t, (_, output) in zip(self.offsets, self._described, strict=True) if output]

    @property
    def model(self) -> str | None:
        """The model the server said answered (first chunk that names one)."""
        return next((m for m in map(model_of, self.chunks) if m), None)

    @property
    def usage_output_tokens(self) -> int | None:
        """Output tokens from the stream's own usage (``include_usage`` chunk, Responses completion)."""
        found = None
        for chunk in self.chunks:
            tokens = usage_output_tokens(chunk)
            if tokens is not None:
                found = tokens
        return found

    def output_tokens(self, model: str | None = None) -> tuple[int, str]:
        """(count, source): the stream's usage, else tiktoken for ``model`` (default: the
        model the server named) if its encoding loads offline, else the content chunks."""
        from .tokens import TokenizerUnavailable, encoding_for_model

        usage = self.usage_output_tokens
        if usage is not None:
            return usage, "usage"
        model = model or self.model
        if model:
            try:
                encoding = encoding_for_model(model, download=False)
            except TokenizerUnavailable:
                pass
            else:
                return len(encoding.encode_ordinary(self.text)), f"tokenizer:{encoding.name}"
        return len(self.content_offsets), "content_chunks"

    def metrics(
        self, convention: str = "streamscope", *, model: str | None = None, output_tokens: int | None = None
    ) -> LatencyMetrics:
        """The latency metrics under ``convention`` (a key of :data:`CONVENTIONS`)."""
        try:
            definition = CONVENTIONS[convention]
        except KeyError:
            raise ValueError(f"unknown convention {convention!r}; known: {', '.join(CONVENTIONS)}") from None
        if output_tokens is not None:
            tokens, source = output_tokens, "given"
        else:
            tokens, source = self.output_tokens(model)
        figures = definition.compute(self, tokens)
        e2el = figures["e2el"]
        return LatencyMetrics(
            convention=convention,
            time_to_first_chunk=self.offsets[0] if self.offsets else None,
            output_tokens=tokens,
            output_tokens_source=source,
            tokens_per_s=tokens / e2el if tokens and e2el else None,
            **figures,
        )

    @classmethod
    def from_recording(cls, recording: Recording) -> Timeline:
        """The timeline of a recorded stream: each event's ``t``, its data parsed as JSON."""
        events = recording.events
        if events is None:
            raise RecordingError(f"recording {recording.name} is not a streamed response")
        offsets: list[float] = []
        chunks: list[Any] = []
        for index, payloads in sse_payloads(event_bytes(events)):
            t = events[index].t  # index -1: a last event the recording cut short
            for payload in payloads:
                if payload is DONE:
                    continue
                if type(payload) is NotJSON:
                    raise RecordingError(
                        f"recording {recording.name}: event {index % len(events)} (t={t}) has data that "
                        f"is not JSON: {payload.data[:60]!r}"
                    )
                chunks.append(payload)
                offsets.append(t)
        return cls(offsets, chunks, end=events[-1].t if events else None)


class StreamTimer:
    """Records when each chunk of a stream arrives.

    Call :meth:`start` right before sending the request (or pass ``start=`` a
    ``time.perf_counter()`` value taken then), then iterate the stream through
    :meth:`track` or :meth:`atrack`; :attr:`timeline` holds what arrived so far.
    """

    def __init__(self, start: float | None = None) -> None:
        self._reset(start)

    def _reset(self, start: float | None) -> None:
        self._start = start
        self._offsets: list[float] = []
        self._chunks: list[Any] = []
        self._end: float | None = None
        self._error: str | None = None

    def start(self) -> StreamTimer:
        """Start (or restart, forgetting what was recorded) the clock: now is when the request is sent."""
        self._reset(time.perf_counter())
        return self

    @property
    def started_at(self) -> float | None:
        """The ``time.perf_counter()`` value the offsets count from (None before :meth:`start`)."""
        return self._start

    @property
    def timeline(self) -> Timeline:
        return Timeline(list(self._offsets), list(self._chunks), end=self._end, error=self._error)

    @property
    def arrived(self) -> int:
        """How many chunks have arrived so far."""
        return len(self._chunks)  # appended after its offset: every counted chunk has one

    def since(self, index: int) -> Timeline:
        """The chunks that arrived from ``index`` on (none copied before it), with their offsets."""
        n = len(self._chunks)
        return Timeline(self._offsets[index:n], self._chunks[index:n])

    def _started(self) -> float:
        if self._start is None:
            raise RuntimeError("StreamTimer not started: call timer.start() right before sending the request")
        return self._start

    def track(self, stream: Iterable[T]) -> Iterator[T]:
        """Yield the stream's chunks unchanged, recording each one's arrival."""
        return self._track(stream, self._started())

    def atrack(self, stream: AsyncIterable[T]) -> AsyncIterator[T]:
        """The async twin of :meth:`track`."""
        return self._atrack(stream, self._started())

    def _track(self, stream: Iterable[T], start: float) -> Iterator[T]:
        # Local names: the loop body is the per-chunk overhead, so it does no lookups.
        clock, offsets, chunks = time.perf_counter, self._offsets, self._chunks
        try:
            for chunk in stream:
                offsets.append(clock() - start)
                chunks.append(chunk)
                yield chunk
        except GeneratorExit:
            raise  # the consumer stopped early: the stream did not finish
        except Exception as exc:
            self._error = f"{type(exc).__name__}: {exc}"
            raise
        self._end = clock() - start

    async def _atrack(self, stream: AsyncIterable[T], start: float) -> AsyncIterator[T]:
        clock, offsets, chunks = time.perf_counter, self._offsets, self._chunks
        try:
            async for chunk in stream:
                offsets.append(clock() - start)
                chunks.append(chunk)
                yield chunk
        except GeneratorExit:
            raise
        except Exception as exc:
            self._error = f"{type(exc).__name__}: {exc}"
            raise
        self._end = clock() - start


# --- the conventions ---------------------------------------------------------


def _gaps(offsets: list[float]) -> list[float]:
    return [b - a for a, b in pairwise(offsets)]


def _per_token_after_first(first: float | None, last: float | None, tokens: int) -> float | None:
    """(last - first) / (tokens - 1): the decode time per token after the first."""
    if first is None or last is None or tokens < 2:
        return None
    return (last - first) / (tokens - 1)


def _stream_end(timeline: Timeline) -> float | None:
    if timeline.end is not None:
        return timeline.end
    return timeline.offsets[-1] if timeline.offsets else None


def _first_to_last(offsets: list[float], tokens: int) -> dict[str, Any]:
    """TTFT at the first of ``offsets``, E2EL at the last, ITL the gaps between them."""
    ttft = offsets[0] if offsets else None
    e2el = offsets[-1] if offsets else None
    return {
        "ttft": ttft,
        "itl": _gaps(offsets),
        "tpot": _per_token_after_first(ttft, e2el, tokens),
        "e2el": e2el,
    }


def _vllm(timeline: Timeline, tokens: int) -> dict[str, Any]:
    return _first_to_last(timeline.output_offsets, tokens)


def _genai_perf(timeline: Timeline, tokens: int) -> dict[str, Any]:
    return _first_to_last(timeline.content_offsets, tokens)


def _streamscope(timeline: Timeline, tokens: int) -> dict[str, Any]:
    # genai-perf's content-based figures, but timed to the end of the stream: a user waits for it.
    return {**_genai_perf(timeline, tokens), "e2el": _stream_end(timeline)}


def _llmperf(timeline: Timeline, tokens: int) -> dict[str, Any]:
    content = timeline.content_offsets
    time_to_next_token = [content[0], *_gaps(content)] if content else []
    return {
        "ttft": content[0] if content else None,
        "itl": time_to_next_token,
        "tpot": sum(time_to_next_token) / tokens if content and tokens else None,
        "e2el": _stream_end(timeline),
    }


CONVENTIONS: dict[str, Convention] = {
    c.name: c
    for c in (
        Convention(
            "streamscope",
            "TTFT: first chunk with non-empty content (what a user sees). ITL: gaps between "
            "consecutive content chunks. TPOT: (last content - TTFT) / (output tokens - 1). "
            "E2EL: end of the stream (iterator exhausted / [DONE]), else the last chunk.",
            "this module (the user's view; TTFT as llmperf and genai-perf time it)",
            _streamscope,
        ),
        Convention(
            "vllm",
            "TTFT: first event with non-empty choices (a role-only chunk counts). ITL: one gap "
            "per later choices-bearing event (per chunk, not per token). E2EL: the last "
            "choices-bearing event (the include_usage chunk does not count). TPOT: "
            "(E2EL - TTFT) / (output tokens - 1); output tokens from usage, tokenizer as fallback. "
            "tokens/s: output tokens / E2EL, the one-request case of its output_throughput "
            "(total output tokens / benchmark duration).",
            "vllm/benchmarks/lib/endpoint_request_func.py async_request_openai_chat_completions "
            "(ttft, itl, latency); vllm/benchmarks/serve.py calculate_metrics (tpot)",
            _vllm,
        ),
        Convention(
            "genai-perf",
            "Responses without content are dropped first. TTFT: first non-empty response. "
            "E2EL (request latency): the last non-empty response. TPOT (its per-request "
            "inter_token_latency): (E2EL - TTFT) / (output tokens - 1). ITL list: gaps "
            "between non-empty responses (genai-perf's chunked ITL divides each by the "
            "response's token count, 1 for OpenAI's one-token chunks). tokens/s: its "
            "output_token_throughput_per_request, output tokens / E2EL.",
            "triton-inference-server/perf_analyzer genai-perf/genai_perf/profile_data_parser/"
            "llm_profile_data_parser.py LLMProfileDataParser._parse_requests, _preprocess_response",
            _genai_perf,
        ),
        Convention(
            "llmperf",
            "TTFT: first non-empty delta.content. ITL list: time_to_next_token, whose first "
            "entry is the TTFT itself, then gaps between content chunks. TPOT (its "
            "inter_token_latency_s): sum of that list / output tokens, so it includes the TTFT. "
            "E2EL: when the stream loop ended. tokens/s: its request_output_throughput, "
            "output tokens / E2EL.",
            "ray-project/llmperf src/llmperf/ray_clients/openai_chat_completions_client.py "
            "OpenAIChatCompletionsClient.llm_request; token_benchmark_ray.py "
            "get_token_throughput_latencies (divides by the tokenizer's output count)",
            _llmperf,
        ),
    )
}
"""The metric conventions by name; each says its definition and the source it follows."""
