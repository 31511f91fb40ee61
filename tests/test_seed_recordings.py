"""The transcribed recordings say exactly what their publications printed.

Each recording is rendered back into the output the publishing notebook printed, with
the notebook's own print statements and its SDK's way of printing objects, and compared
with the publication:

* the 2023 seed (``../shared/seed``): openai 0.27 printed OpenAIObjects as
  ``json.dumps(obj, sort_keys=True, indent=2)``; the seed is a text dump that folded
  whitespace, so both sides are compared with runs of whitespace collapsed;
* the current cookbook notebook (openai/openai-cookbook@d2bb606,
  examples/How_to_stream_completions.ipynb), which is not stored here: openai-python 1.x
  printed pydantic reprs; the rendered stdout of each cell is compared with the sha256 of
  that cell's stdout in the notebook file, plus a few readable expected values.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import pytest
from streamscope.recording import RECORDINGS_DIR, Recording, load_recording

TRANSCRIBER = Path(__file__).resolve().parents[1] / "tools" / "transcribe_seed_and_cookbook.py"

SEED_NAMES = [
    "seed-chat-count-to-100",
    "seed-chat-1plus1-stream",
    "seed-chat-count-to-100-stream",
    "seed-completion-count-to-100",
    "seed-completion-count-to-100-stream",
]
COOKBOOK_NAMES = [
    "cookbook-chat-count-to-100",
    "cookbook-chat-1plus1-stream",
    "cookbook-chat-count-to-100-stream",
    "cookbook-chat-1plus1-include-usage-stream",
]


def _transcriber():
    spec = importlib.util.spec_from_file_location("transcribe_seed_and_cookbook", TRANSCRIBER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def collapse(text: str) -> str:
    return " ".join(text.split())


def chunks(rec: Recording) -> list[tuple[float, dict[str, Any]]]:
    """The JSON chunks of a stream with their times; the stream must end with [DONE]."""
    assert rec.events[-1].raw == "data: [DONE]\n\n"
    out = []
    for event in rec.events[:-1]:
        assert event.raw.startswith("data: ") and event.raw.endswith("\n\n"), event.raw
        out.append((event.t, json.loads(event.raw.removeprefix("data: "))))
    return out


# --- every recording ----------------------------------------------------------------


@pytest.mark.parametrize("name", SEED_NAMES + COOKBOOK_NAMES)
def test_recording_is_well_formed(name):
    rec = load_recording(name)
    p = rec.provenance
    assert p["method"] == "transcribed" and p["server"] == "api.openai.com"
    assert p["source"] and p["model"] and len(p["notes"]) > 100
    assert "headers were not published" in p["notes"]
    assert rec.match_key()
    if rec.streamed:
        times = [e.t for e in rec.events]
        assert times == sorted(times), "arrival times go backwards"
        assert rec.headers == {"content-type": "text/event-stream"}
        assert chunks(rec)
        if p["timing_resolution_s"] is None:
            assert set(times) == {0.0}
    else:
        assert rec.elapsed > 0 and rec.headers == {"content-type": "application/json"}


def test_match_keys_are_distinct():
    keys = [load_recording(n).match_key() for n in SEED_NAMES + COOKBOOK_NAMES]
    assert len(set(keys)) == len(keys)


# --- the 2023 seed ------------------------------------------------------------------


def printed_after(seed_path: Path, code_line: str, occurrence: int = 0) -> str:
    """What the seed printed below a code cell ending with ``code_line`` (one line in the dump)."""
    lines = seed_path.read_text(encoding="utf-8").splitlines()
    found = [lines[i + 1] for i, line in enumerate(lines[:-1]) if line.strip() == code_line]
    return found[occurrence]


def oai(value: Any) -> str:
    """How openai 0.27 printed an OpenAIObject (``OpenAIObject.__str__``)."""
    return json.dumps(value, sort_keys=True, indent=2)


def render_chat(rec: Recording) -> str:
    head = f"Full response received {rec.elapsed:.2f} seconds after request\nFull response received:"
    return f"{head}\n{oai(rec.body)}"


def render_chat_extracted(rec: Recording) -> str:
    reply = rec.body["choices"][0]["message"]
    return f"Extracted reply: \n{oai(reply)}\nExtracted content: \n{reply['content']}"


def render_1plus1(rec: Recording) -> str:
    return "\n".join(oai(chunk) for _, chunk in chunks(rec))


def render_chat_stream(rec: Recording) -> str:
    lines, deltas, t = [], [], 0.0
    for t, chunk in chunks(rec):
        delta = chunk["choices"][0]["delta"]
        deltas.append(delta)
        lines.append(f"Message received {t:.2f} seconds after request: {oai(delta)}")
    lines.append(f"Full response received {t:.2f} seconds after request")
    lines.append(f"Full conversation received: {''.join(d.get('content', '') for d in deltas)}")
    return "\n".join(lines)


def render_completion(rec: Recording) -> str:
    text = rec.body["choices"][0]["text"]
    return f"Full response received {rec.elapsed:.2f} seconds after request\nFull text received: {text}"


def render_completion_stream(rec: Recording) -> str:
    lines, text, t = [], "", 0.0
    for t, chunk in chunks(rec):
        piece = chunk["choices"][0]["text"]
        text += piece
        lines.append(f"Text received: {piece} ({t:.2f} seconds after request)")
    lines.append(f"Full response received {t:.2f} seconds after request")
    lines.append(f"Full text received: {text}")
    return "\n".join(lines)


SEED_OUTPUTS = [
    ("seed-chat-count-to-100", render_chat, 'print(f"Full response received:\\n{response}")', 0),
    ("seed-chat-count-to-100", render_chat_extracted, 'print(f"Extracted content: \\n{reply_content}")', 0),
    ("seed-chat-1plus1-stream", render_1plus1, "print(chunk)", 0),
    (
        "seed-chat-count-to-100-stream",
        render_chat_stream,
        'print(f"Full conversation received: {full_reply_content}")',
        0,
    ),
    ("seed-completion-count-to-100", render_completion, 'print(f"Full text received: {completion_text}")', 0),
    (
        "seed-completion-count-to-100-stream",
        render_completion_stream,
        'print(f"Full text received: {completion_text}")',
        1,
    ),
]


@pytest.mark.parametrize(("name", "render", "code_line", "occurrence"), SEED_OUTPUTS)
def test_seed_recording_prints_what_the_seed_printed(seed_path, name, render, code_line, occurrence):
    assert collapse(render(load_recording(name))) == collapse(printed_after(seed_path, code_line, occurrence))


def test_a_changed_time_is_caught(seed_path):
    rec = load_recording("seed-chat-count-to-100-stream")
    expected = collapse(
        printed_after(seed_path, 'print(f"Full conversation received: {full_reply_content}")')
    )
    assert collapse(render_chat_stream(rec)) == expected
    rec.events[150] = type(rec.events[150])(rec.events[150].t + 0.01, rec.events[150].raw)
    assert collapse(render_chat_stream(rec)) != expected


def test_seed_stream_sizes():
    assert len(chunks(load_recording("seed-chat-1plus1-stream"))) == 4
    count = chunks(load_recording("seed-chat-count-to-100-stream"))
    assert len(count) == 302
    assert count[1][1]["choices"][0]["delta"] == {"content": "\n\n"}
    assert [c["choices"][0]["finish_reason"] for _, c in count].count("stop") == 1
    completion = chunks(load_recording("seed-completion-count-to-100-stream"))
    assert (
        len(completion)
        == 193
        == load_recording("seed-completion-count-to-100-stream").request["body"]["max_tokens"]
    )


def test_transcription_reproduces_the_committed_seed_recordings(seed_path, tmp_path):
    assert _transcriber().main([str(seed_path), "--out", str(tmp_path)]) == 0
    for name in SEED_NAMES:
        assert (tmp_path / f"{name}.json").read_bytes() == (RECORDINGS_DIR / f"{name}.json").read_bytes(), (
            name
        )


# --- the current cookbook notebook --------------------------------------------------

# sha256 of each cell's stdout in openai/openai-cookbook@d2bb606c4eb7a3042ef39bd66971d5ccc2763ce3
# examples/How_to_stream_completions.ipynb ("".join(cell["outputs"][0]["text"])).
COOKBOOK_STDOUT_SHA256 = {
    "cookbook-chat-count-to-100": "68c1e777ea409d6dd145f340a006bdf51ac9448cc4769837488a55911f5115a8",
    "cookbook-chat-1plus1-stream": "05b69f8b1f130d686b1c15e3304f7c17edf7205f95a41b3705c640a389f1bd83",
    "cookbook-chat-count-to-100-stream": "967c7505f2ac8eb2feee78af23f8758942c9b5a936b62b2df2144c4a4fea6bd3",
    "cookbook-chat-1plus1-include-usage-stream": (
        "29df08bb722143acd3eaff43d27b0a9e742f81d7f321b8d897cae57407d55a6f"
    ),
}
# What that notebook printed as the assembled replies, and the include_usage chunk's usage.
COOKBOOK_COUNT_REPLY = ", ".join(str(n) for n in range(1, 101))
COOKBOOK_1PLUS1_REPLY = "Two."
COOKBOOK_INCLUDE_USAGE = {"prompt_tokens": 18, "completion_tokens": 2, "total_tokens": 20}


def _choice_repr(choice: dict[str, Any]) -> str:
    delta = choice["delta"]
    return (
        f"Choice(delta=ChoiceDelta(content={delta.get('content')!r}, function_call=None, "
        f"role={delta.get('role')!r}, tool_calls=None), finish_reason={choice['finish_reason']!r}, "
        "index=0, logprobs=None)"
    )


def _usage_repr(usage: dict[str, int] | None) -> str:
    if usage is None:
        return "None"
    return (
        f"CompletionUsage(completion_tokens={usage['completion_tokens']}, "
        f"prompt_tokens={usage['prompt_tokens']}, total_tokens={usage['total_tokens']})"
    )


def print_cookbook_chat(rec: Recording) -> str:
    b = rec.body
    (c,) = b["choices"]
    message = c["message"]
    return (
        f"Full response received {rec.elapsed:.2f} seconds after request\nFull response received:\n"
        f"ChatCompletion(id={b['id']!r}, choices=[Choice(finish_reason={c['finish_reason']!r}, index=0, "
        f"logprobs=None, message=ChatCompletionMessage(content={message['content']!r}, "
        f"role={message['role']!r}, function_call=None, tool_calls=None))], created={b['created']}, "
        f"model={b['model']!r}, object={b['object']!r}, system_fingerprint={b['system_fingerprint']!r}, "
        f"usage={_usage_repr(b['usage'])})\n"
    )


def print_cookbook_1plus1(rec: Recording) -> str:
    out = ""
    for _, c in chunks(rec):
        (choice,) = c["choices"]
        out += (
            f"ChatCompletionChunk(id={c['id']!r}, choices=[{_choice_repr(choice)}], created={c['created']}, "
            f"model={c['model']!r}, object={c['object']!r}, "
            f"system_fingerprint={c['system_fingerprint']!r}, usage=None)\n"
            f"{choice['delta'].get('content')}\n****************\n"
        )
    return out


def print_cookbook_count_stream(rec: Recording) -> str:
    out, t, contents = "", 0.0, []
    for t, c in chunks(rec):
        content = c["choices"][0]["delta"].get("content")
        contents.append(content)
        out += f"Message received {t:.2f} seconds after request: {content}\n"
    reply = "".join(m for m in contents if m is not None)
    return (
        out + f"Full response received {t:.2f} seconds after request\nFull conversation received: {reply}\n"
    )


def print_cookbook_include_usage(rec: Recording) -> str:
    out = ""
    for _, c in chunks(rec):
        choices = "[" + ", ".join(_choice_repr(choice) for choice in c["choices"]) + "]"
        out += f"choices: {choices}\nusage: {_usage_repr(c['usage'])}\n****************\n"
    return out


COOKBOOK_PRINTERS = {
    "cookbook-chat-count-to-100": print_cookbook_chat,
    "cookbook-chat-1plus1-stream": print_cookbook_1plus1,
    "cookbook-chat-count-to-100-stream": print_cookbook_count_stream,
    "cookbook-chat-1plus1-include-usage-stream": print_cookbook_include_usage,
}


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize("name", COOKBOOK_NAMES)
def test_cookbook_recording_prints_what_the_notebook_printed(name):
    printed = COOKBOOK_PRINTERS[name](load_recording(name))
    assert _sha256(printed) == COOKBOOK_STDOUT_SHA256[name]


def test_a_changed_cookbook_time_is_caught():
    rec = load_recording("cookbook-chat-count-to-100-stream")
    rec.events[42] = type(rec.events[42])(rec.events[42].t + 0.01, rec.events[42].raw)
    assert _sha256(print_cookbook_count_stream(rec)) != COOKBOOK_STDOUT_SHA256[rec.name]


def _reply(rec: Recording) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for _, c in chunks(rec) if c["choices"])


def test_cookbook_replies_and_usage():
    assert load_recording("cookbook-chat-count-to-100").body["choices"][0]["message"]["content"] == (
        COOKBOOK_COUNT_REPLY
    )
    count = load_recording("cookbook-chat-count-to-100-stream")
    assert _reply(count) == COOKBOOK_COUNT_REPLY
    # 298 content chunks (the non-streamed call's completion_tokens), plus role and closing chunks.
    assert len(chunks(count)) == 300
    assert (count.events[0].t, count.events[-1].t) == (1.14, 2.82)
    assert _reply(load_recording("cookbook-chat-1plus1-stream")) == COOKBOOK_1PLUS1_REPLY
    usage_stream = chunks(load_recording("cookbook-chat-1plus1-include-usage-stream"))
    assert _reply(load_recording("cookbook-chat-1plus1-include-usage-stream")) == COOKBOOK_1PLUS1_REPLY
    assert [c["usage"] for _, c in usage_stream] == [None] * 4 + [COOKBOOK_INCLUDE_USAGE]
    assert usage_stream[-1][1]["choices"] == []


COOKBOOK_NOTEBOOK = os.environ.get("STREAMSCOPE_COOKBOOK_NOTEBOOK")


@pytest.mark.skipif(
    not COOKBOOK_NOTEBOOK,
    reason="set STREAMSCOPE_COOKBOOK_NOTEBOOK to a copy of openai/openai-cookbook@d2bb606 "
    "examples/How_to_stream_completions.ipynb to check the cookbook transcription (not stored here)",
)
def test_transcription_reproduces_the_committed_cookbook_recordings(seed_path, tmp_path):
    assert _transcriber().main([str(seed_path), "--cookbook", COOKBOOK_NOTEBOOK, "--out", str(tmp_path)]) == 0
    for name in COOKBOOK_NAMES:
        assert (tmp_path / f"{name}.json").read_bytes() == (RECORDINGS_DIR / f"{name}.json").read_bytes(), (
            name
        )
