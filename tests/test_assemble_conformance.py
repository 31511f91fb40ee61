"""The assembler against the 30 recorded OpenAI streams of the shared conformance corpus.

References (see the corpus README): a chat stream must assemble to what the SDK's own
accumulator, ``ChatCompletionStreamState``, makes of it; a Responses stream to the
``response`` of its terminal event. Where the SDK raises or is wrong, the test says
which reference it uses instead, and why.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
from corpus import assembled_both_ways, payloads
from streamscope.assemble import Assembler, assemble_sse


def raw_stream(corpus_dir: Path, name: str) -> bytes:
    return (corpus_dir / f"{name}.sse").read_bytes()


def test_the_corpus_has_its_30_streams(corpus_streams: list[Path]) -> None:
    assert len(corpus_streams) == 30


# --- chat: against ChatCompletionStreamState ------------------------------------------


def sdk_reference(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """What the SDK's accumulator makes of the chunks, with two documented repairs.

    - Chunks whose ``object`` is not ``chat.completion.chunk`` are skipped, exactly as
      the SDK's own ``ChatCompletionStream`` skips them: Azure's first chunk holds only
      ``prompt_filter_results`` (with empty id and model).
    - A choice without ``delta`` (Azure's filter-only choice) gets an empty one: the
      accumulator raises ``AttributeError`` on it.
    The SDK raises ``LengthFinishReasonError`` on ``finish_reason: "length"`` after it
    has updated its snapshot in place, so the error is caught and the stream goes on.
    """
    from openai import LengthFinishReasonError
    from openai._models import construct_type
    from openai.lib.streaming.chat._completions import ChatCompletionStreamState
    from openai.types.chat import ChatCompletionChunk

    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    for chunk in chunks:
        if chunk.get("object") != "chat.completion.chunk":
            continue
        chunk = {**chunk, "choices": [{"delta": {}, **c} for c in chunk["choices"]]}
        with contextlib.suppress(LengthFinishReasonError):
            state.handle_chunk(construct_type(type_=ChatCompletionChunk, value=chunk))
    completion = state.current_completion_snapshot.model_dump(mode="json")
    for choice in completion["choices"]:
        # A stream may never send a role (Azure's gpt-4o-mini one does not): the SDK then
        # leaves it unset, but a chat.completion message's role is always "assistant".
        choice["message"]["role"] = choice["message"]["role"] or "assistant"
    return completion


# Fields our result has that the SDK does not keep, checked by `test_azure_filter_results`.
AZURE_ONLY = {"prompt_filter_results", "content_filter_results"}
SDK_ONLY = {"parsed", "parsed_arguments", "index", "obfuscation"}


def comparable(value: Any, drop: set[str]) -> Any:
    """Without null fields (the SDK's models default every absent field to None) and ``drop``."""
    if isinstance(value, dict):
        return {k: comparable(v, drop) for k, v in value.items() if v is not None and k not in drop}
    if isinstance(value, list):
        return [comparable(v, drop) for v in value]
    return value


@pytest.mark.corpus(kind="chat")
def test_chat_stream_assembles_like_the_sdk(corpus_stream: str, corpus_dir: Path) -> None:
    raw = raw_stream(corpus_dir, corpus_stream)
    chunks = [p for p in payloads(raw) if isinstance(p, dict)]
    result = assemble_sse(raw)
    assert result.complete, result.reason
    assert result.object["object"] == "chat.completion"
    assert [c["index"] for c in result.object["choices"]] == list(range(len(result.object["choices"])))
    drop = AZURE_ONLY | SDK_ONLY  # choices and tool calls are listed in index order on both sides
    assert comparable(result.object, drop) == comparable(sdk_reference(chunks), drop)


@pytest.mark.corpus(prefix="g__")
def test_azure_filter_results(corpus_stream: str, corpus_dir: Path) -> None:
    """Azure's filter verdicts, which the SDK drops: the prompt's from the first chunk, and
    per choice the latest non-empty one (the closing chunk carries ``{}``)."""
    raw = raw_stream(corpus_dir, corpus_stream)
    chunks = [p for p in payloads(raw) if isinstance(p, dict)]
    result = assemble_sse(raw).object
    assert result["prompt_filter_results"] == chunks[0]["prompt_filter_results"]
    verdicts = [c.get("content_filter_results") for chunk in chunks for c in chunk["choices"]]
    assert result["choices"][0]["content_filter_results"] == [v for v in verdicts if v][-1]
    assert result["id"] and result["model"] and result["created"]


# --- legacy completions: a hand-checked reference -----------------------------------


@pytest.mark.corpus(kind="text")
def test_text_completion_stream(corpus_stream: str, corpus_dir: Path) -> None:
    """The SDK has no accumulator for legacy completions: the reference is the text the
    chunks carry, concatenated, and the last chunk's finish_reason (both streams hit
    the 16-token default, so ``length``)."""
    raw = raw_stream(corpus_dir, corpus_stream)
    chunks = [p for p in payloads(raw) if isinstance(p, dict)]
    result = assemble_sse(raw)
    assert result.complete, result.reason
    obj = result.object
    assert obj["object"] == "text_completion"
    assert [obj[k] for k in ("id", "model", "created")] == [chunks[0][k] for k in ("id", "model", "created")]
    [choice] = obj["choices"]
    assert choice["text"] == "".join(c["choices"][0]["text"] for c in chunks)
    assert choice["finish_reason"] == "length"


# --- Responses: against the terminal event's response ---------------------------------


def items_texts(output: list[dict[str, Any]]) -> list[Any]:
    """What the deltas build, item by item: type and id, texts, arguments, summaries."""
    texts = []
    for item in output:
        parts = [(p.get("type"), p.get("text"), p.get("refusal")) for p in item.get("content") or ()]
        summary = [p.get("text") for p in item.get("summary") or ()]
        texts.append((item.get("type"), item.get("id"), item.get("arguments"), parts, summary))
    return texts


@pytest.mark.corpus(kind="responses")
def test_responses_stream_builds_the_terminal_response(corpus_stream: str, corpus_dir: Path) -> None:
    events = [p for p in payloads(raw_stream(corpus_dir, corpus_stream)) if isinstance(p, dict)]
    terminal = events[-1]
    assert terminal["type"] in {"response.completed", "response.incomplete", "response.failed"}
    before_terminal = Assembler()
    for event in events[:-1]:
        before_terminal.feed(event)
    built = before_terminal.snapshot()
    assert items_texts(built["output"]) == items_texts(terminal["response"]["output"])
    assert built["id"] == terminal["response"]["id"]

    result = assemble_sse(raw_stream(corpus_dir, corpus_stream))
    assert result.object == terminal["response"]
    assert result.warnings == ()
    if terminal["type"] == "response.failed":
        assert not result.complete
        assert result.error["message"] == terminal["response"]["error"]["message"]
    else:
        assert result.complete, result.reason


def test_responses_incomplete_is_a_complete_stream_of_a_truncated_answer(corpus_dir: Path) -> None:
    result = assemble_sse(raw_stream(corpus_dir, "j__ddtrace-responses-gpt4o-incomplete"))
    assert result.complete
    assert result.object["status"] == "incomplete"
    assert result.object["incomplete_details"] == {"reason": "max_output_tokens"}


def test_responses_error_event_is_surfaced(corpus_dir: Path) -> None:
    result = assemble_sse(raw_stream(corpus_dir, "j__vercel-responses-insufficient-quota-reframed"))
    assert not result.complete
    assert result.error is not None
    assert result.error["code"] == "insufficient_quota"
    assert result.reason.startswith("the stream carried an error: You exceeded your current quota")
    assert result.object["status"] == "failed"


# --- SDK objects in, the same result out ------------------------------------------------


def test_sdk_objects_assemble_like_their_json(corpus_stream: str, corpus_dir: Path) -> None:
    raw = raw_stream(corpus_dir, corpus_stream)
    from_json, from_models = assembled_both_ways(raw)
    assert json.loads(json.dumps(from_models.snapshot())) == from_json.snapshot()
    assert from_models.result().complete == from_json.result().complete
