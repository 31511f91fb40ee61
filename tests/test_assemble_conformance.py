"""The assembler against the 30 recorded OpenAI streams of the shared conformance corpus.

References (see the corpus README): a chat stream must assemble to what the SDK's own
accumulator, ``ChatCompletionStreamState``, makes of it; a Responses stream to the
``response`` of its terminal event. Where the SDK raises or is wrong, the test says
which reference it uses instead, and why.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from streamscope.assemble import Assembler, assemble_sse
from streamscope.sse import SSEDecoder

# ../shared/conformance from the repository's root; STREAMSCOPE_CONFORMANCE points elsewhere
# (a git worktree's ../ is not the main checkout's).
ROOT = Path(__file__).resolve().parents[1]
CONFORMANCE = Path(os.environ.get("STREAMSCOPE_CONFORMANCE") or ROOT.parent / "shared" / "conformance")
CORPUS = CONFORMANCE / "openai-streams"
STREAMS = sorted(CORPUS.glob("*.sse"))
NO_CORPUS = "the conformance corpus (../shared/conformance/openai-streams) is not here"


def read_stream(folder: Path, name: str, missing: str) -> bytes:
    """The raw body of stream ``name`` in ``folder``; without it the test skips, saying ``missing``."""
    path = folder / f"{name}.sse"
    if not path.exists():
        pytest.skip(missing)
    return path.read_bytes()


def raw_stream(name: str) -> bytes:
    return read_stream(CORPUS, name, NO_CORPUS)


def payloads(raw: bytes) -> list[Any]:
    """Each event's data, parsed (``"[DONE]"`` kept as the string)."""
    decoder = SSEDecoder()
    events = decoder.feed(raw) + decoder.close()
    return [e.data if e.data.startswith("[DONE]") else json.loads(e.data) for e in events]


def kind(name: str) -> str:
    first = payloads(raw_stream(name))[0]
    if "type" in first:
        return "responses"
    return "text" if first.get("object") == "text_completion" else "chat"


def stream_names(of_kind: str | None = None, prefix: str = "") -> list[Any]:
    """Names of the corpus streams (of one kind), or one skipped case where the corpus is absent."""
    names = [p.stem for p in STREAMS if p.stem.startswith(prefix) and of_kind in (None, kind(p.stem))]
    return names or [pytest.param(None, marks=pytest.mark.skip(reason=NO_CORPUS))]


def test_the_corpus_has_its_30_streams() -> None:
    if not STREAMS:
        pytest.skip(NO_CORPUS)
    assert len(STREAMS) == 30


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


@pytest.mark.parametrize("name", stream_names("chat"))
def test_chat_stream_assembles_like_the_sdk(name: str) -> None:
    raw = raw_stream(name)
    chunks = [p for p in payloads(raw) if isinstance(p, dict)]
    result = assemble_sse(raw)
    assert result.complete, result.reason
    assert result.object["object"] == "chat.completion"
    assert [c["index"] for c in result.object["choices"]] == list(range(len(result.object["choices"])))
    drop = AZURE_ONLY | SDK_ONLY  # choices and tool calls are listed in index order on both sides
    assert comparable(result.object, drop) == comparable(sdk_reference(chunks), drop)


@pytest.mark.parametrize("name", stream_names(prefix="g__"))
def test_azure_filter_results(name: str) -> None:
    """Azure's filter verdicts, which the SDK drops: the prompt's from the first chunk, and
    per choice the latest non-empty one (the closing chunk carries ``{}``)."""
    raw = raw_stream(name)
    chunks = [p for p in payloads(raw) if isinstance(p, dict)]
    result = assemble_sse(raw).object
    assert result["prompt_filter_results"] == chunks[0]["prompt_filter_results"]
    verdicts = [c.get("content_filter_results") for chunk in chunks for c in chunk["choices"]]
    assert result["choices"][0]["content_filter_results"] == [v for v in verdicts if v][-1]
    assert result["id"] and result["model"] and result["created"]


# --- legacy completions: a hand-checked reference -----------------------------------


@pytest.mark.parametrize("name", stream_names("text"))
def test_text_completion_stream(name: str) -> None:
    """The SDK has no accumulator for legacy completions: the reference is the text the
    chunks carry, concatenated, and the last chunk's finish_reason (both streams hit
    the 16-token default, so ``length``)."""
    raw = raw_stream(name)
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


@pytest.mark.parametrize("name", stream_names("responses"))
def test_responses_stream_builds_the_terminal_response(name: str) -> None:
    events = [p for p in payloads(raw_stream(name)) if isinstance(p, dict)]
    terminal = events[-1]
    assert terminal["type"] in {"response.completed", "response.incomplete", "response.failed"}
    before_terminal = Assembler()
    for event in events[:-1]:
        before_terminal.feed(event)
    built = before_terminal.snapshot()
    assert items_texts(built["output"]) == items_texts(terminal["response"]["output"])
    assert built["id"] == terminal["response"]["id"]

    result = assemble_sse(raw_stream(name))
    assert result.object == terminal["response"]
    assert result.warnings == ()
    if terminal["type"] == "response.failed":
        assert not result.complete
        assert result.error["message"] == terminal["response"]["error"]["message"]
    else:
        assert result.complete, result.reason


def test_responses_incomplete_is_a_complete_stream_of_a_truncated_answer() -> None:
    result = assemble_sse(raw_stream("j__ddtrace-responses-gpt4o-incomplete"))
    assert result.complete
    assert result.object["status"] == "incomplete"
    assert result.object["incomplete_details"] == {"reason": "max_output_tokens"}


def test_responses_error_event_is_surfaced() -> None:
    result = assemble_sse(raw_stream("j__vercel-responses-insufficient-quota-reframed"))
    assert not result.complete
    assert result.error is not None
    assert result.error["code"] == "insufficient_quota"
    assert result.reason.startswith("the stream carried an error: You exceeded your current quota")
    assert result.object["status"] == "failed"


# --- SDK objects in, the same result out ------------------------------------------------


def sdk_objects(name: str) -> list[Any]:
    from openai._models import construct_type
    from openai.types import Completion
    from openai.types.chat import ChatCompletionChunk
    from openai.types.responses import ResponseStreamEvent

    type_ = {"chat": ChatCompletionChunk, "text": Completion, "responses": ResponseStreamEvent}[kind(name)]
    return [construct_type(type_=type_, value=p) for p in payloads(raw_stream(name)) if isinstance(p, dict)]


@pytest.mark.parametrize("name", stream_names())
def test_sdk_objects_assemble_like_their_json(name: str) -> None:
    from_json, from_models = Assembler(), Assembler()
    for payload in payloads(raw_stream(name)):
        from_json.feed(payload)
    for model in sdk_objects(name):
        from_models.feed(model)
    assert json.loads(json.dumps(from_models.snapshot())) == from_json.snapshot()
    assert from_models.result().complete == from_json.result().complete
