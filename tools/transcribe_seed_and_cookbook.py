"""Transcribe the published outputs of OpenAI's "How to stream completions" notebook into recordings.

Two publications, one function each:

* ``seed_recordings``: the 2023 notebook this project grew from, as the text dump in
  ``../shared/seed/how_to_stream_completions.txt`` (whitespace folded by the HTML-to-text
  conversion). Five exchanges, March 2023, openai-python 0.27.
* ``cookbook_recordings``: the current notebook, openai/openai-cookbook
  ``examples/How_to_stream_completions.ipynb`` at commit ``COOKBOOK_COMMIT`` (July 2024,
  openai-python 1.x). Four exchanges, including the ``include_usage`` stream. The notebook is
  not stored in this project: pass ``--cookbook PATH`` to a copy of that file.

What a notebook printed is kept exactly (times, deltas, texts, ids); what it did not print
(wire framing, key order, unprinted ids) is rebuilt following the API's own output of the
same period, and each recording's ``provenance.notes`` says which is which.

    python tools/transcribe_seed_and_cookbook.py [SEED_TXT] [--cookbook NOTEBOOK.ipynb] [--out DIR]
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from streamscope.recording import RECORDINGS_DIR, Event, Recording

ROOT = Path(__file__).resolve().parents[1]
SEED_PATH = ROOT.parent / "shared" / "seed" / "how_to_stream_completions.txt"
COOKBOOK_REPO = "openai/openai-cookbook"
COOKBOOK_FILE = "examples/How_to_stream_completions.ipynb"
COOKBOOK_COMMIT = "d2bb606c4eb7a3042ef39bd66971d5ccc2763ce3"

COUNT_PROMPT = "Count to 100, with a comma between each number and no newlines. E.g., 1, 2, 3, ..."
ONE_PLUS_ONE_PROMPT = "What's 1+1? Answer in one word."
DONE = "data: [DONE]\n\n"
UNPUBLISHED_CHAT_ID = "chatcmpl-unpublished"
UNPUBLISHED_COMPLETION_ID = "cmpl-unpublished"

SEED_SOURCE = "OpenAI Cookbook notebook How_to_stream_completions (2023), published output"
COOKBOOK_SOURCE = (
    f"OpenAI Cookbook notebook How_to_stream_completions, {COOKBOOK_REPO}@{COOKBOOK_COMMIT} "
    f"{COOKBOOK_FILE}, published output"
)

# Why the rebuilt framing looks the way it does: raw API output of the same weeks, quoted in
# public repositories (ids and dates let anyone find them again).
WIRE_2023_CHAT = (
    "Chat chunks are framed as the API sent them in March 2023: 'data: ' + compact JSON with keys "
    "id, object, created, model, choices[{delta, index, finish_reason}] + a blank line, as in raw "
    "captures quoted in public code (chatcmpl-6pqQB0NVBCjNcs6aPeFUi4gy1pCoj, created 1677814255, "
    "the same day; chatcmpl-6qJTvkR92tgHsu9nvdFSJSdhzk4yO, created 1677925963)."
)
WIRE_2023_COMPLETION = (
    "text_completion chunks are framed as the legacy endpoint sent them in early 2023: JSON with "
    "', ' and ': ' separators (Python json.dumps defaults), keys id, object, created, "
    "choices[{text, index, logprobs, finish_reason}], model, as in raw captures quoted in public "
    "code (cmpl-6pIHnOOJiiUEVMesXwxzzcSQFoZHj, created 1677683039, Grt1228/chatgpt-java README; "
    "cmpl-6n1mYrlWTmE9184S4pajlIx6JITEu, created 1677142942; cmpl-77HaOi08g0u94sH0MNxN07pXHBJ2i, "
    "created 1681970252, DataDog/dd-trace-py tests/contrib/openai/cassettes/v0/completion_streamed.yaml). "
    "The finish_reason of a stream stopped by max_tokens rides on the last text chunk, as in that "
    "cassette."
)
WIRE_2024_CHAT = (
    "Chunks are framed as the API sent them in 2024: 'data: ' + compact JSON with keys id, object, "
    "created, model, system_fingerprint, choices[{index, delta, logprobs, finish_reason}] (+ usage "
    "when include_usage was asked), as in the 2024 gpt-3.5-turbo-0125 stream of traceloop/openllmetry "
    "packages/opentelemetry-instrumentation-openai/tests/traces/cassettes/test_chat/"
    "test_chat_streaming_with_events_with_content.yaml; the first chunk carries role and content ''."
)


def _timing_note(printed: bool) -> str:
    if printed:
        return (
            "Event times t are the printed arrival offsets (time.time() after the SDK yielded the "
            "chunk, printed with 2 decimals); data: [DONE] gets the last chunk's time."
        )
    return (
        "The notebook printed no timing for this stream: every event has t = 0 and "
        "timing_resolution_s is null. Do not use this recording for latency figures."
    )


# --- wire framing -----------------------------------------------------------------


def _sse(payload: dict[str, Any], *, compact: bool = True) -> str:
    separators = (",", ":") if compact else (", ", ": ")
    return f"data: {json.dumps(payload, separators=separators)}\n\n"


def chat_chunk_2023(
    chunk_id: str, created: int, model: str, delta: dict[str, Any], finish_reason: str | None
) -> str:
    return _sse(
        {
            "id": chunk_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"delta": delta, "index": 0, "finish_reason": finish_reason}],
        }
    )


def text_completion_chunk_2023(
    chunk_id: str, created: int, model: str, text: str, finish_reason: str | None
) -> str:
    choice = {"text": text, "index": 0, "logprobs": None, "finish_reason": finish_reason}
    payload = {"id": chunk_id, "object": "text_completion", "created": created, "choices": [choice]}
    payload["model"] = model
    return _sse(payload, compact=False)


def chat_chunk_2024(
    chunk_id: str,
    created: int,
    model: str,
    choices: list[dict[str, Any]],
    *,
    system_fingerprint: str | None = None,
    usage: Any = ...,
) -> str:
    """A 2024 chunk; ``usage`` is left out unless given (None gives ``"usage": null``)."""
    payload: dict[str, Any] = {"id": chunk_id, "object": "chat.completion.chunk", "created": created}
    payload["model"] = model
    if system_fingerprint is not None:
        payload["system_fingerprint"] = system_fingerprint
    payload["choices"] = choices
    if usage is not ...:
        payload["usage"] = usage
    return _sse(payload)


def choice_2024(delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}


def _events(raws: Sequence[str], times: Sequence[float]) -> list[Event]:
    events = [Event(t, raw) for t, raw in zip(times, raws, strict=True)]
    return [*events, Event(times[-1] if times else 0.0, DONE)]


def _provenance(
    source: str, model: str, date: str, resolution: float | None, notes: Sequence[str]
) -> dict[str, Any]:
    return {
        "source": source,
        "server": "api.openai.com",
        "model": model,
        "date": date,
        "method": "transcribed",
        "timing_resolution_s": resolution,
        "notes": " ".join(notes),
    }


def _chat_request(body: dict[str, Any]) -> dict[str, Any]:
    return {"method": "POST", "path": "/v1/chat/completions", "body": body}


def _seed_chat_request(prompt: str, **options: Any) -> dict[str, Any]:
    """openai 0.27 sent the arguments given, in call order."""
    messages = [{"role": "user", "content": prompt}]
    return _chat_request({"model": "gpt-3.5-turbo", "messages": messages, "temperature": 0, **options})


def _cookbook_chat_request(prompt: str, **options: Any) -> dict[str, Any]:
    """openai-python 1.x sends messages, model, then the other arguments alphabetically."""
    body = {"messages": [{"role": "user", "content": prompt}], "model": "gpt-4o-mini", "temperature": 0}
    body.update(options)
    return _chat_request({k: body[k] for k in sorted(body)})


SSE_HEADERS = {"content-type": "text/event-stream"}
JSON_HEADERS = {"content-type": "application/json"}
HEADERS_NOTE = "The response headers were not published; only content-type is given."


# --- the 2023 seed ----------------------------------------------------------------


class TranscriptionError(ValueError):
    """The publication does not hold the output this script expects."""


def _outputs_after(text: str, code_line: str) -> list[str]:
    """The printed output lines that follow each occurrence of a code line in the dump."""
    lines = text.splitlines()
    found = [lines[i + 1] for i, line in enumerate(lines[:-1]) if line.strip() == code_line]
    if not found:
        raise TranscriptionError(f"no output after {code_line!r}")
    return found


def _json_values(text: str) -> Iterator[tuple[str, Any]]:
    """Split printed output into its text and the JSON objects printed inside it."""
    decoder = json.JSONDecoder()
    pos = 0
    while (start := text.find("{", pos)) != -1:
        value, end = decoder.raw_decode(text, start)
        yield text[pos:start], value
        pos = end
    if text[pos:].strip():
        yield text[pos:], None


_TIME = r"(\d+\.\d\d)"


def seed_recordings(text: str) -> list[Recording]:
    """The five exchanges of the 2023 notebook."""
    return [
        _seed_chat(text),
        _seed_chat_1plus1_stream(text),
        _seed_chat_count_stream(text),
        _seed_completion(text),
        _seed_completion_stream(text),
    ]


def _seed_chat(text: str) -> Recording:
    (line,) = _outputs_after(text, 'print(f"Full response received:\\n{response}")')
    m = re.match(rf"Full response received {_TIME} seconds after request Full response received: ", line)
    if not m:
        raise TranscriptionError("non-streamed chat output not found")
    printed = json.JSONDecoder().raw_decode(line, m.end())[0]
    (choice,) = printed["choices"]
    body = {
        "id": printed["id"],
        "object": printed["object"],
        "created": printed["created"],
        "model": printed["model"],
        "usage": {k: printed["usage"][k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")},
        "choices": [
            {
                "message": {"role": choice["message"]["role"], "content": choice["message"]["content"]},
                "finish_reason": choice["finish_reason"],
                "index": choice["index"],
            }
        ],
    }
    return Recording(
        name="seed-chat-count-to-100",
        provenance=_provenance(
            SEED_SOURCE,
            body["model"],
            "2023-03-03",
            0.01,
            [
                "The body is the printed chat.completion object, every value as printed. openai 0.27 "
                "printed it with sorted keys; the keys are put back in the API's 2023 order (id, "
                "object, created, model, usage, choices[{message{role, content}, finish_reason, "
                "index}]), as in 2023 responses quoted in public code "
                "(chatcmpl-7AskLcepNLxYsNYqbdJoIsUy4915t).",
                "elapsed is the printed 3.03 s (time.time() around the call, 2 decimals).",
                "The request body is what openai 0.27 sent for the printed call (it sends only the "
                "arguments given, in call order).",
                HEADERS_NOTE,
                "Date from created 1677825456 (2023-03-03 06:37:36 UTC).",
            ],
        ),
        request=_seed_chat_request(COUNT_PROMPT),
        headers=dict(JSON_HEADERS),
        body=body,
        elapsed=float(m.group(1)),
    )


def _seed_chat_1plus1_stream(text: str) -> Recording:
    (line,) = _outputs_after(text, "print(chunk)")
    chunks = [value for between, value in _json_values(line) if value is not None and not between.strip()]
    if len(chunks) != 4:
        raise TranscriptionError(f"expected the 4 printed chunks of the 1+1 stream, found {len(chunks)}")
    raws = [
        chat_chunk_2023(
            c["id"], c["created"], c["model"], c["choices"][0]["delta"], c["choices"][0]["finish_reason"]
        )
        for c in chunks
    ]
    return Recording(
        name="seed-chat-1plus1-stream",
        provenance=_provenance(
            SEED_SOURCE,
            chunks[0]["model"],
            "2023-03-03",
            None,
            [
                "All 4 chunks were printed in full (openai 0.27 printed each with sorted keys); every "
                "value is as printed. Rebuilt: the SSE framing, the key order and the final "
                "data: [DONE], which the SDK consumes without printing.",
                WIRE_2023_CHAT,
                _timing_note(printed=False),
                HEADERS_NOTE,
                "Date from created 1677825464 (2023-03-03 06:37:44 UTC).",
            ],
        ),
        request=_seed_chat_request(ONE_PLUS_ONE_PROMPT, stream=True),
        headers=dict(SSE_HEADERS),
        events=_events(raws, [0.0] * len(raws)),
    )


def _seed_chat_count_stream(text: str) -> Recording:
    (line,) = _outputs_after(text, 'print(f"Full conversation received: {full_reply_content}")')
    times: list[float] = []
    deltas: list[dict[str, Any]] = []
    tail = ""
    for between, value in _json_values(line):
        m = re.fullmatch(rf"\s*Message received {_TIME} seconds after request: ", between)
        if value is None or not m:
            tail = between
            break
        times.append(float(m.group(1)))
        deltas.append(value)
    if not re.fullmatch(
        rf"\s*Full response received {_TIME} seconds after request Full conversation .*", tail
    ):
        raise TranscriptionError("the count-to-100 stream output does not end as expected")
    (one_plus_one,) = _outputs_after(text, "print(chunk)")
    lower_bound_created = next(v for _, v in _json_values(one_plus_one))["created"]
    model = "gpt-3.5-turbo-0301"
    raws = [
        chat_chunk_2023(UNPUBLISHED_CHAT_ID, lower_bound_created, model, d, None if d else "stop")
        for d in deltas
    ]
    return Recording(
        name="seed-chat-count-to-100-stream",
        provenance=_provenance(
            SEED_SOURCE,
            model,
            "2023-03-03",
            0.01,
            [
                f"Printed: the {len(deltas)} deltas (role, content pieces starting with '\\n\\n', and "
                "the closing {}) each with its arrival time; they are kept as printed.",
                "Rebuilt, not printed: the chunk envelope. id is the placeholder "
                f"{UNPUBLISHED_CHAT_ID!r} (the real id was never published); created is "
                f"{lower_bound_created}, the created of the 1+1 stream the notebook ran just before "
                "(a lower bound, not the real value); model gpt-3.5-turbo-0301 as returned by the "
                "notebook's other gpt-3.5-turbo calls; object chat.completion.chunk; index 0; "
                "finish_reason null on every chunk but the closing {} one, which gets 'stop' as in "
                "the printed 1+1 stream.",
                WIRE_2023_CHAT,
                _timing_note(printed=True),
                HEADERS_NOTE,
            ],
        ),
        request=_seed_chat_request(COUNT_PROMPT, stream=True),
        headers=dict(SSE_HEADERS),
        events=_events(raws, times),
    )


_COMPLETION_REQUEST = {"model": "text-davinci-002", "prompt": "1,2,3,", "max_tokens": 193, "temperature": 0}
_FINISH_REASON_NOTE = (
    "finish_reason 'length' is inferred, not printed: the streamed run of the same request delivered "
    "193 chunks, and max_tokens is 193; counted with p50k_base, the model's encoding, the text is 193 "
    "tokens, so generation stopped at the token limit."
)


def _seed_completion(text: str) -> Recording:
    line = _outputs_after(text, 'print(f"Full text received: {completion_text}")')[0]
    m = re.fullmatch(rf"Full response received {_TIME} seconds after request Full text received: (\S+)", line)
    if not m:
        raise TranscriptionError("non-streamed completion output not found")
    choice = {"text": m.group(2), "index": 0, "logprobs": None, "finish_reason": "length"}
    return Recording(
        name="seed-completion-count-to-100",
        provenance=_provenance(
            SEED_SOURCE,
            "text-davinci-002",
            "2023-03-03",
            0.01,
            [
                "Printed: only the elapsed time (3.43 s) and choices[0].text; both are kept as printed.",
                "Rebuilt, minimally: object text_completion, model text-davinci-002 (the model asked "
                "for; the legacy endpoint echoed it), choices[0] with index 0 and logprobs null "
                "(none were asked for). Left out because unknowable: id, created, usage.",
                _FINISH_REASON_NOTE,
                "The text starts with '4': the dump folds whitespace, so a leading space or newline "
                "would not show; the streamed run's first chunk is '4' with no whitespace.",
                HEADERS_NOTE,
                "Date: the notebook's other calls (created 1677825456) ran on 2023-03-03.",
            ],
        ),
        request={"method": "POST", "path": "/v1/completions", "body": dict(_COMPLETION_REQUEST)},
        headers=dict(JSON_HEADERS),
        body={"object": "text_completion", "model": "text-davinci-002", "choices": [choice]},
        elapsed=float(m.group(1)),
    )


def _seed_completion_stream(text: str) -> Recording:
    line = _outputs_after(text, 'print(f"Full text received: {completion_text}")')[1]
    pieces = re.findall(rf"Text received: (\S*) \({_TIME} seconds after request\)", line)
    if not pieces:
        raise TranscriptionError("streamed completion output not found")
    (one_plus_one,) = _outputs_after(text, "print(chunk)")
    lower_bound_created = next(v for _, v in _json_values(one_plus_one))["created"]
    model = "text-davinci-002"
    last = len(pieces) - 1
    raws = [
        text_completion_chunk_2023(
            UNPUBLISHED_COMPLETION_ID, lower_bound_created, model, piece, "length" if i == last else None
        )
        for i, (piece, _) in enumerate(pieces)
    ]
    return Recording(
        name="seed-completion-count-to-100-stream",
        provenance=_provenance(
            SEED_SOURCE,
            model,
            "2023-03-03",
            0.01,
            [
                f"Printed: the {len(pieces)} text pieces, each with its arrival time; kept as printed.",
                f"Rebuilt, not printed: the chunk envelope. id is the placeholder "
                f"{UNPUBLISHED_COMPLETION_ID!r}; created is {lower_bound_created}, the created of the "
                "1+1 chat stream the notebook ran earlier (a lower bound, not the real value); model "
                "text-davinci-002 as asked; index 0, logprobs null; finish_reason null except on the "
                "last chunk.",
                _FINISH_REASON_NOTE,
                WIRE_2023_COMPLETION,
                _timing_note(printed=True),
                HEADERS_NOTE,
            ],
        ),
        request={
            "method": "POST",
            "path": "/v1/completions",
            "body": {**_COMPLETION_REQUEST, "stream": True},
        },
        headers=dict(SSE_HEADERS),
        events=_events(raws, [float(t) for _, t in pieces]),
    )


# --- the current cookbook notebook --------------------------------------------------


def _cell_output(notebook: dict[str, Any], *needles: str, absent: str | None = None) -> list[str]:
    """The stdout lines of the one code cell whose source holds every needle."""
    matches = []
    for cell in notebook["cells"]:
        source = "".join(cell.get("source", []))
        wanted = all(n in source for n in needles) and (absent is None or absent not in source)
        if cell.get("cell_type") == "code" and wanted:
            matches.append(cell)
    if len(matches) != 1:
        raise TranscriptionError(f"expected one code cell with {needles}, found {len(matches)}")
    text = "".join("".join(o.get("text", [])) for o in matches[0]["outputs"] if o.get("name") == "stdout")
    return text.splitlines(keepends=True)


_PY_VALUE = r"(None|\d+|'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")"


def _field(printed: str, name: str) -> Any:
    """A field of a printed pydantic object, e.g. ``content='Two'`` -> 'Two'."""
    m = re.search(rf"\b{name}={_PY_VALUE}", printed)
    if not m:
        raise TranscriptionError(f"no {name}= in {printed[:80]!r}")
    return ast.literal_eval(m.group(1))


def _delta(printed: str) -> dict[str, Any]:
    role, content = _field(printed, "role"), _field(printed, "content")
    delta = {"role": role} if role is not None else {}
    if content is not None:
        delta["content"] = content
    return delta


def _usage(printed: str) -> dict[str, int]:
    return {k: _field(printed, k) for k in ("prompt_tokens", "completion_tokens", "total_tokens")}


def cookbook_recordings(notebook: dict[str, Any]) -> list[Recording]:
    """The streamed exchanges (and the non-streamed one they are compared with) of the current notebook."""
    chat = _cookbook_chat(notebook)
    one_plus_one = _cookbook_1plus1_stream(notebook)
    return [
        chat,
        one_plus_one,
        _cookbook_count_stream(notebook, one_plus_one),
        _cookbook_include_usage_stream(notebook, one_plus_one),
    ]


def _cookbook_provenance(model: str, resolution: float | None, notes: Sequence[str]) -> dict[str, Any]:
    return _provenance(
        COOKBOOK_SOURCE,
        model,
        "2024-07-15",
        resolution,
        [
            *notes,
            "The request asked for gpt-4o-mini; the server answered as model 'gpt-july-test' (a "
            "pre-release name, before gpt-4o-mini's public launch), which is kept.",
            "The request body is what openai-python 1.x sends for the printed call (messages, model, "
            "then the other arguments in alphabetical order).",
            HEADERS_NOTE,
        ],
    )


def _cookbook_chat(notebook: dict[str, Any]) -> Recording:
    lines = _cell_output(notebook, "Count to 100", absent="stream=True")
    m = re.fullmatch(rf"Full response received {_TIME} seconds after request\n", lines[0])
    if not m or not lines[2].startswith("ChatCompletion("):
        raise TranscriptionError("non-streamed cookbook chat output not found")
    printed = lines[2]
    body = {
        "id": _field(printed, "id"),
        "object": _field(printed, "object"),
        "created": _field(printed, "created"),
        "model": _field(printed, "model"),
        "choices": [
            {
                "index": _field(printed, "index"),
                "message": {"role": _field(printed, "role"), "content": _field(printed, "content")},
                "logprobs": None,
                "finish_reason": _field(printed, "finish_reason"),
            }
        ],
        "usage": _usage(printed),
        "system_fingerprint": _field(printed, "system_fingerprint"),
    }
    return Recording(
        name="cookbook-chat-count-to-100",
        provenance=_cookbook_provenance(
            body["model"],
            0.01,
            [
                "The body is the printed ChatCompletion (its repr), every value as printed. Rebuilt: "
                "the JSON key order, the API's 2024 order (id, object, created, model, choices[{index, "
                "message{role, content}, logprobs, finish_reason}], usage, system_fingerprint); the "
                "SDK's defaults that print as None (function_call, tool_calls) are left out.",
                "elapsed is the printed 1.88 s. Date from created 1721075651 (2024-07-15 20:34:11 UTC).",
            ],
        ),
        request=_cookbook_chat_request(COUNT_PROMPT),
        headers=dict(JSON_HEADERS),
        body=body,
        elapsed=float(m.group(1)),
    )


def _cookbook_1plus1_stream(notebook: dict[str, Any]) -> Recording:
    lines = _cell_output(notebook, ONE_PLUS_ONE_PROMPT, "stream=True", absent="stream_options")
    printed = [line for line in lines if line.startswith("ChatCompletionChunk(")]
    raws = [
        chat_chunk_2024(
            _field(p, "id"),
            _field(p, "created"),
            _field(p, "model"),
            [choice_2024(_delta(p), _field(p, "finish_reason"))],
            system_fingerprint=_field(p, "system_fingerprint"),
        )
        for p in printed
    ]
    return Recording(
        name="cookbook-chat-1plus1-stream",
        provenance=_cookbook_provenance(
            _field(printed[0], "model"),
            None,
            [
                f"All {len(printed)} chunks were printed in full (as pydantic reprs); every value is "
                "as printed. Rebuilt: the SSE framing, the key order, and the final data: [DONE]. "
                "Fields the SDK prints as None when they are absent are left out (delta role/content "
                "None, function_call, tool_calls, usage: no include_usage was asked); logprobs is "
                "written as null, as the API sent it in 2024.",
                WIRE_2024_CHAT,
                _timing_note(printed=False),
                "Date from created 1721075653 (2024-07-15 20:34:13 UTC).",
            ],
        ),
        request=_cookbook_chat_request(ONE_PLUS_ONE_PROMPT, stream=True),
        headers=dict(SSE_HEADERS),
        events=_events(raws, [0.0] * len(raws)),
    )


def _neighbour_envelope(one_plus_one: Recording) -> tuple[int, str]:
    first = json.loads(one_plus_one.events[0].raw.removeprefix("data: "))
    return first["created"], first["model"]


def _neighbour_note(created: int, model: str) -> str:
    return (
        f"Rebuilt, not printed: the chunk envelope. id is the placeholder {UNPUBLISHED_CHAT_ID!r} (never "
        f"published); created is {created} and model {model!r}, both taken from the 1+1 stream the "
        "notebook ran just before in the same session (created is a lower bound, not the real "
        "value); system_fingerprint, unknowable, is left out; object chat.completion.chunk, index 0, "
        "logprobs null."
    )


def _cookbook_count_stream(notebook: dict[str, Any], one_plus_one: Recording) -> Recording:
    lines = _cell_output(notebook, "Count to 100", "stream=True")
    pattern = re.compile(rf"Message received {_TIME} seconds after request: (.*)\n")
    times: list[float] = []
    contents: list[str | None] = []
    for line in lines:
        if m := pattern.fullmatch(line):
            times.append(float(m.group(1)))
            # The loop printed str(delta.content): the closing chunk's None shows as "None".
            contents.append(None if m.group(2) == "None" else m.group(2))
    created, model = _neighbour_envelope(one_plus_one)
    raws = []
    for i, content in enumerate(contents):
        if i == 0 and content == "":
            delta: dict[str, Any] = {"role": "assistant", "content": ""}
        else:
            delta = {} if content is None else {"content": content}
        raws.append(
            chat_chunk_2024(
                UNPUBLISHED_CHAT_ID, created, model, [choice_2024(delta, "stop" if content is None else None)]
            )
        )
    return Recording(
        name="cookbook-chat-count-to-100-stream",
        provenance=_cookbook_provenance(
            model,
            0.01,
            [
                f"Printed: delta.content of each of the {len(contents)} chunks with its arrival time; "
                "kept as printed. The first chunk printed content '' and is written as the role chunk "
                "{role: assistant, content: ''} (the printed 1+1 stream's first chunk); the last printed "
                "None and is written as the closing chunk (delta {}, finish_reason 'stop', as in the "
                "1+1 stream; finish_reason was not printed here).",
                _neighbour_note(created, model),
                WIRE_2024_CHAT,
                _timing_note(printed=True),
            ],
        ),
        request=_cookbook_chat_request(COUNT_PROMPT, stream=True),
        headers=dict(SSE_HEADERS),
        events=_events(raws, times),
    )


def _cookbook_include_usage_stream(notebook: dict[str, Any], one_plus_one: Recording) -> Recording:
    lines = _cell_output(notebook, "stream_options")
    created, model = _neighbour_envelope(one_plus_one)
    raws = []
    for choices_line, usage_line in zip(lines[0::3], lines[1::3], strict=True):
        if not choices_line.startswith("choices: ") or not usage_line.startswith("usage: "):
            raise TranscriptionError(f"unexpected include_usage output {choices_line!r}")
        choices = []
        if choices_line.strip() != "choices: []":
            choices = [choice_2024(_delta(choices_line), _field(choices_line, "finish_reason"))]
        usage = None if usage_line.strip() == "usage: None" else _usage(usage_line)
        raws.append(chat_chunk_2024(UNPUBLISHED_CHAT_ID, created, model, choices, usage=usage))
    return Recording(
        name="cookbook-chat-1plus1-include-usage-stream",
        provenance=_cookbook_provenance(
            model,
            None,
            [
                f"Printed: choices and usage of each of the {len(raws)} chunks, including the final "
                "choices: [] chunk with the usage of the whole request; kept as printed (usage keys "
                "in the API's order prompt_tokens, completion_tokens, total_tokens). usage: null on "
                "the other chunks, as the notebook itself says the API sends it.",
                _neighbour_note(created, model),
                WIRE_2024_CHAT,
                _timing_note(printed=False),
            ],
        ),
        request=_cookbook_chat_request(
            ONE_PLUS_ONE_PROMPT, stream=True, stream_options={"include_usage": True}
        ),
        headers=dict(SSE_HEADERS),
        events=_events(raws, [0.0] * len(raws)),
    )


# --- command line -----------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("seed", nargs="?", default=str(SEED_PATH), help="the seed text dump")
    parser.add_argument(
        "--cookbook", default=None, help=f"{COOKBOOK_FILE} at {COOKBOOK_COMMIT[:12]} (optional)"
    )
    parser.add_argument("--out", default=str(RECORDINGS_DIR), help="folder to write recordings into")
    args = parser.parse_args(argv)
    out = Path(args.out)
    try:
        recordings = seed_recordings(Path(args.seed).read_text(encoding="utf-8"))
        if args.cookbook:
            notebook = json.loads(Path(args.cookbook).read_text(encoding="utf-8"))
            recordings += cookbook_recordings(notebook)
    except (OSError, ValueError) as exc:  # TranscriptionError and JSONDecodeError are ValueErrors
        print(f"transcribe_seed_and_cookbook: {exc}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    for recording in recordings:
        print(recording.save(out / f"{recording.name}.json"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
