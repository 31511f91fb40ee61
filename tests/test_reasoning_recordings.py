"""The reasoning streams transcribed from public test suites: provenance, no invented times, and
``assemble`` reading each dialect's reasoning apart from the answer (notebook 06)."""

from __future__ import annotations

import json

import pytest
from streamscope.assemble import assemble_sse
from streamscope.recording import iter_recordings, load_recording

TRANSCRIBED = [rec for rec in iter_recordings() if not rec.timed]

# recording -> (where the dialect puts its reasoning in the assembled message, how to read one delta's)
CHAT_DIALECTS = {
    "ddtrace-deepseek-chat-reasoning-content-stream": (
        "reasoning_content",
        lambda d: d.get("reasoning_content"),
    ),
    "pydantic-ai-groq-gpt-oss-chat-reasoning-stream": ("reasoning", lambda d: d.get("reasoning")),
    "pydantic-ai-openrouter-claude-chat-reasoning-stream": ("reasoning", lambda d: d.get("reasoning")),
    "ddtrace-mistral-magistral-chat-thinking-stream": (
        "reasoning_content",
        lambda d: (
            "".join(
                piece["text"]
                for part in d.get("content") or []
                if isinstance(part, dict) and part.get("type") == "thinking"
                for piece in part["thinking"]
            )
            if isinstance(d.get("content"), list)
            else None
        ),
    ),
}
RESPONSES_DIALECTS = {
    "pydantic-ai-o3-mini-responses-reasoning-summary-stream": (
        "summary",
        "response.reasoning_summary_text.delta",
    ),
    "pydantic-ai-deepseek-responses-reasoning-text-stream": ("content", "response.reasoning_text.delta"),
}


def wire_payloads(name: str) -> list[dict]:
    """The JSON objects of a recording's data lines, read without streamscope's decoder."""
    payloads = []
    for event in load_recording(name).events or []:
        for line in event.raw.splitlines():
            if line.startswith("data: {"):
                payloads.append(json.loads(line.removeprefix("data: ")))
    return payloads


def test_the_transcribed_streams_are_there() -> None:
    assert {rec.name for rec in TRANSCRIBED} >= {*CHAT_DIALECTS, *RESPONSES_DIALECTS}


@pytest.mark.parametrize("rec", TRANSCRIBED, ids=[rec.name for rec in TRANSCRIBED])
def test_a_transcribed_stream_names_its_source_and_claims_no_times(rec) -> None:
    p = rec.provenance
    assert p["method"] == "transcribed" and p["timing_resolution_s"] is None
    assert all(event.t == 0 for event in rec.events or [])
    if p.get("licence") is not None:  # the cassettes' licences ask for their notice to be kept
        assert " at commit " in p["source"] and len(p["licence_notice"]) > 100
        assert ("Permission is hereby granted" in p["licence_notice"]) == (p["licence"] == "MIT")


@pytest.mark.parametrize("name", sorted(CHAT_DIALECTS))
def test_assemble_reads_each_chat_dialects_reasoning_apart_from_the_content(name: str) -> None:
    field, reasoning_of = CHAT_DIALECTS[name]
    deltas = [choice["delta"] for chunk in wire_payloads(name) for choice in chunk.get("choices") or []]
    expected = "".join(reasoning_of(d) or "" for d in deltas)
    content = "".join(d["content"] for d in deltas if isinstance(d.get("content"), str))
    result = assemble_sse(load_recording(name).sse_bytes())
    message = result.object["choices"][0]["message"]
    assert result.complete
    assert expected and message[field] == expected
    assert (message["content"] or "") == content


@pytest.mark.parametrize("name", sorted(RESPONSES_DIALECTS))
def test_assemble_reads_each_responses_reasoning_into_its_reasoning_item(name: str) -> None:
    key, delta_type = RESPONSES_DIALECTS[name]
    expected = "".join(p["delta"] for p in wire_payloads(name) if p["type"] == delta_type)
    result = assemble_sse(load_recording(name).sse_bytes())
    (item,) = [item for item in result.object["output"] if item["type"] == "reasoning"]
    assert result.complete
    assert expected and "".join(part["text"] for part in item[key]) == expected
