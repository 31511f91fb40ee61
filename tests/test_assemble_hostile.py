"""``assemble`` (API and command) under bad and hostile input: never a traceback.

The contract: the API returns an `AssembleResult` or raises `StreamFormatError`; the
command exits 0 (complete), 3 (ended early), 4 (carried an error), 2 (not an SSE
stream of JSON events) or 5 (the result could not be written), with at most one line
on stderr, and prints only valid JSON (RFC 8259: no NaN or Infinity, no lone
surrogates). A field of the wrong type is skipped and said in a warning, and the rest
of the stream is assembled; an index is bounded by what arrived.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from streamscope.assemble import Assembler, StreamFormatError, assemble_events, assemble_sse

CHAT_HEAD = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m"}


def chunk(**fields: Any) -> dict[str, Any]:
    return {**CHAT_HEAD, **fields}


def sse(*payloads: Any) -> bytes:
    return b"".join(f"data: {p if isinstance(p, str) else json.dumps(p)}\n\n".encode() for p in payloads)


def chat_around(bad: Any) -> bytes:
    """A good chat stream ("kept", stop, [DONE]) with ``bad`` as its second event."""
    first = chunk(choices=[{"index": 0, "delta": {"role": "assistant", "content": "kept"}}])
    last = chunk(choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}])
    return sse(first, bad, last, "[DONE]")


def choice(**fields: Any) -> dict[str, Any]:
    return chunk(choices=[{"index": 0, **fields}])


def delta(**fields: Any) -> dict[str, Any]:
    return choice(delta=fields)


# id -> (the bad chunk, what the warning names)
WRONG_CHAT_FIELDS: dict[str, tuple[Any, str]] = {
    "choices-number": (chunk(choices=5), "choices"),
    "choices-string": (chunk(choices="abc"), "choices"),
    "choices-object": (chunk(choices={"index": 0}), "choices"),
    "choice-string": (chunk(choices=["x"]), "choices[]"),
    "choice-number": (chunk(choices=[7]), "choices[]"),
    "choice-array": (chunk(choices=[[1]]), "choices[]"),
    "choice-null": (chunk(choices=[None]), "choices[]"),
    "index-array": (choice(index=[0], delta={"content": "x"}), "choices[].index"),
    "index-object": (choice(index={"a": 1}, delta={"content": "x"}), "choices[].index"),
    "index-string": (choice(index="0", delta={"content": "x"}), "choices[].index"),
    "index-fraction": (choice(index=1.5, delta={"content": "x"}), "choices[].index"),
    "index-true": (choice(index=True, delta={"content": "x"}), "choices[].index"),
    "delta-string": (choice(delta="x"), "choices[].delta"),
    "delta-number": (choice(delta=5), "choices[].delta"),
    "delta-array": (choice(delta=[1]), "choices[].delta"),
    "delta-true": (choice(delta=True), "choices[].delta"),
    "content-number": (delta(content=5), "delta.content"),
    "content-object": (delta(content={"a": 1}), "delta.content"),
    "content-true": (delta(content=True), "delta.content"),
    "content-parts-numbers": (delta(content=[1, 2]), "delta.content[]"),
    "thinking-number": (delta(content=[{"type": "thinking", "thinking": 5}]), "delta.content[].thinking"),
    "text-part-number": (delta(content=[{"type": "text", "text": 5}]), "delta.content[].text"),
    "refusal-object": (delta(refusal={"a": 1}), "delta.refusal"),
    "reasoning-number": (delta(reasoning_content=5), "delta.reasoning_content"),
    "role-number": (delta(role=5), "delta.role"),
    "role-object": (delta(role={"a": 1}), "delta.role"),
    "channel-array": (delta(channel=["a"]), "delta.channel"),
    "tool-calls-string": (delta(tool_calls="x"), "delta.tool_calls"),
    "tool-calls-number": (delta(tool_calls=5), "delta.tool_calls"),
    "tool-calls-object": (delta(tool_calls={"index": 0}), "delta.tool_calls"),
    "tool-call-number": (delta(tool_calls=[5]), "delta.tool_calls[]"),
    "tool-call-index-array": (delta(tool_calls=[{"index": [0], "id": "a"}]), "delta.tool_calls[].index"),
    "tool-call-function-string": (delta(tool_calls=[{"index": 0, "function": "x"}]), "tool_calls[].function"),
    "tool-call-arguments-number": (
        delta(tool_calls=[{"index": 0, "function": {"arguments": 5}}]),
        "tool_calls[].function.arguments",
    ),
    "tool-call-name-object": (
        delta(tool_calls=[{"index": 0, "function": {"name": {"a": 1}}}]),
        "tool_calls[].function.name",
    ),
    "tool-call-id-number": (delta(tool_calls=[{"index": 0, "id": 5}]), "tool_calls[].id"),
    "function-call-string": (delta(function_call="x"), "delta.function_call"),
    "function-call-arguments-array": (delta(function_call={"arguments": [1]}), "function_call.arguments"),
    "logprobs-string": (choice(delta={}, logprobs="x"), "choices[].logprobs"),
    "logprobs-array": (choice(delta={}, logprobs=[1]), "choices[].logprobs"),
    "logprobs-content-string": (choice(delta={}, logprobs={"content": "x"}), "logprobs.content"),
    "finish-reason-number": (choice(delta={}, finish_reason=5), "choices[].finish_reason"),
    "finish-reason-object": (choice(delta={}, finish_reason={"a": 1}), "choices[].finish_reason"),
    "x-groq-string": (chunk(choices=[], x_groq="x"), "x_groq"),
}


@pytest.mark.parametrize("bad,field", WRONG_CHAT_FIELDS.values(), ids=WRONG_CHAT_FIELDS.keys())
def test_a_chat_field_of_the_wrong_type_is_skipped_and_said(bad: Any, field: str) -> None:
    result = assemble_sse(chat_around(bad))
    assert result.complete, result.reason
    [message] = [c["message"] for c in result.object["choices"] if c["index"] == 0]
    assert message["content"].startswith("kept")
    assert result.object["choices"][0]["finish_reason"] == "stop"
    assert any(f"{field}:" in w for w in result.warnings), result.warnings
    json.dumps(result.object, allow_nan=False)


def test_fields_kept_as_sent_whatever_their_type() -> None:
    """Fields the assembler only copies (usage, id, model, ...) are the server's business."""
    bad = chunk(id={"a": 1}, model=5, usage="x", system_fingerprint=[1], choices=[])
    result = assemble_sse(chat_around(bad))
    assert result.complete
    assert result.warnings == ()
    assert result.object["usage"] == "x"


@pytest.mark.parametrize("index", [10**9, -1, 2**70])
def test_chat_indexes_are_keys_not_positions(index: int) -> None:
    """A huge or negative choice or tool-call index costs one entry, not a list that long."""
    bad = chunk(
        choices=[{"index": index, "delta": {"content": "far", "tool_calls": [{"index": index, "id": "t"}]}}]
    )
    result = assemble_sse(chat_around(bad))
    assert [c["index"] for c in result.object["choices"]] == sorted([0, index])
    [far] = [c for c in result.object["choices"] if c["index"] == index]
    assert far["message"]["content"] == "far"
    assert len(far["message"]["tool_calls"]) == 1


@pytest.mark.parametrize(
    "error,message",
    [("x", "x"), (5, "5"), ([1], "[1]"), ({"message": {"a": 1}}, "{'a': 1}"), ({"code": 7}, "7")],
)
def test_an_error_of_any_shape_is_an_error(error: Any, message: str) -> None:
    result = assemble_sse(chat_around({"error": error}))
    assert not result.complete
    assert result.error is not None
    assert result.reason == "the stream carried an error: " + message


# --- Responses ------------------------------------------------------------------------

RESPONSE = {"id": "resp_1", "object": "response", "status": "in_progress", "output": []}
ITEM = {"type": "message", "id": "msg_1", "role": "assistant", "content": []}
PART = {"type": "output_text", "text": "", "annotations": []}


def event(type_: str, **fields: Any) -> dict[str, Any]:
    return {"type": type_, **fields}


def text_delta(**fields: Any) -> dict[str, Any]:
    return event(
        "response.output_text.delta", **{"output_index": 0, "content_index": 0, "delta": "x", **fields}
    )


def responses_around(bad: Any, *, terminal: bool = True) -> bytes:
    """A Responses stream writing "kept" in one message, with ``bad`` in the middle."""
    events = [
        event("response.created", response=RESPONSE),
        event("response.output_item.added", output_index=0, item=ITEM),
        event("response.content_part.added", output_index=0, content_index=0, part=PART),
        text_delta(delta="kept"),
        bad,
    ]
    if terminal:
        item = {**ITEM, "content": [{**PART, "text": "kept"}]}
        events.append(
            event("response.completed", response={**RESPONSE, "status": "completed", "output": [item]})
        )
    return sse(*events)


WRONG_RESPONSES_FIELDS: dict[str, tuple[Any, str]] = {
    "type-number": ({"type": 5, "delta": "x"}, "type"),
    "type-array": ({"type": ["response.output_text.delta"]}, "type"),
    "output-index-huge": (text_delta(output_index=10**9), "output_index"),
    "output-index-negative": (text_delta(output_index=-1), "output_index"),
    "output-index-string": (text_delta(output_index="0"), "output_index"),
    "output-index-array": (text_delta(output_index=[0]), "output_index"),
    "output-index-fraction": (text_delta(output_index=0.5), "output_index"),
    "item-added-huge-index": (
        event("response.output_item.added", output_index=10**9, item=ITEM),
        "output_index",
    ),
    "item-done-negative-index": (
        event("response.output_item.done", output_index=-1, item=ITEM),
        "output_index",
    ),
    "content-index-huge": (text_delta(content_index=10**9), "content_index"),
    "content-index-negative": (text_delta(content_index=-1), "content_index"),
    "content-index-string": (text_delta(content_index="x"), "content_index"),
    "summary-index-huge": (
        event("response.reasoning_summary_part.added", output_index=0, summary_index=10**9, part={}),
        "summary_index",
    ),
    "annotation-index-huge": (
        event(
            "response.output_text.annotation.added",
            output_index=0,
            content_index=0,
            annotation_index=10**9,
            annotation={},
        ),
        "annotation_index",
    ),
    "item-string": (event("response.output_item.added", output_index=1, item="x"), "item"),
    "item-number": (event("response.output_item.done", output_index=0, item=5), "item"),
    "part-string": (event("response.content_part.added", output_index=0, content_index=1, part="x"), "part"),
    "delta-number": (text_delta(delta=5), "delta"),
    "delta-object": (text_delta(delta={"a": 1}), "delta"),
    "logprobs-string": (text_delta(logprobs="x"), "logprobs"),
    "logprobs-number": (text_delta(logprobs=5), "logprobs"),
    "response-string": (event("response.in_progress", response="x"), "response"),
    "response-output-string": (event("response.in_progress", response={**RESPONSE, "output": "x"}), "output"),
    "response-output-numbers": (
        event("response.in_progress", response={**RESPONSE, "output": [5]}),
        "output[]",
    ),
}


BOUNDED_ASSEMBLY = """
import json, sys
from streamscope.assemble import assemble_sse
result = assemble_sse(sys.stdin.buffer.read())
print(json.dumps({"object": result.object, "complete": result.complete, "warnings": result.warnings}))
"""


def bounded(limit_mib: int = 1024) -> Any:
    """For a child process: at most ``limit_mib`` of address space, so that an index of 10**9
    fails fast there (MemoryError) instead of taking the shared machine's memory."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit_mib << 20, limit_mib << 20))

    return limit


def assemble_in_a_bounded_process(body: bytes) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", BOUNDED_ASSEMBLY],
        input=body,
        capture_output=True,
        timeout=60,
        preexec_fn=bounded(),
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return json.loads(done.stdout)


@pytest.mark.parametrize("bad,field", WRONG_RESPONSES_FIELDS.values(), ids=WRONG_RESPONSES_FIELDS.keys())
@pytest.mark.parametrize("terminal", [True, False], ids=["completed", "cut"])
def test_a_responses_field_of_the_wrong_type_is_skipped_and_said(
    bad: Any, field: str, terminal: bool
) -> None:
    result = assemble_in_a_bounded_process(responses_around(bad, terminal=terminal))
    assert result["complete"] == terminal
    texts = [p.get("text") for item in result["object"]["output"] for p in item.get("content") or ()]
    assert texts[0].startswith("kept")
    assert any(f"{field}:" in w for w in result["warnings"]), result["warnings"]


def test_responses_parts_that_are_not_objects_in_an_item() -> None:
    """An item whose content is not a list, or holds a number where a part belongs."""
    events = [
        event("response.output_item.added", output_index=0, item={**ITEM, "content": "x"}),
        text_delta(delta="a"),
        event("response.output_item.added", output_index=1, item={**ITEM, "content": [5]}),
        text_delta(output_index=1, delta="b"),
    ]
    result = assemble_sse(sse(*events))
    assert [item["content"][0]["text"] for item in result.object["output"]] == ["a", "b"]
    assert result.warnings


def test_terminal_output_that_is_not_a_list_keeps_what_the_events_built() -> None:
    bad = event("response.completed", response={**RESPONSE, "status": "completed", "output": "x"})
    result = assemble_sse(responses_around(bad, terminal=False))
    assert result.object["output"][0]["content"][0]["text"] == "kept"
    assert any("output:" in w for w in result.warnings)


@pytest.mark.parametrize("error", ["x", 5, [1], {"message": 5}])
def test_a_responses_error_event_of_any_shape(error: Any) -> None:
    result = assemble_sse(responses_around(event("error", error=error), terminal=False))
    assert result.error is not None
    assert not result.complete


def test_feeding_something_that_is_not_an_event_raises_stream_format_error() -> None:
    for bad in (5, 1.5, None, [1], b"x", object()):
        with pytest.raises(StreamFormatError):
            Assembler().feed(bad)
    with pytest.raises(StreamFormatError):
        assemble_events(iter([{"object": "chat.completion.chunk", "choices": []}, 5]))


# --- values JSON cannot hold, and nesting -----------------------------------------------

NON_FINITE = b'{"a": NaN, "b": Infinity, "c": -Infinity, "d": 1e400, "e": [NaN]}'
SURROGATES = rb'"\ud800 \udfff"'


def strict_json(raw: bytes) -> Any:
    """Parse as RFC 8259 JSON: strict UTF-8, no NaN or Infinity."""

    def refuse(name: str) -> None:
        raise AssertionError(f"{name} in the output")

    return json.loads(raw.decode("utf-8"), parse_constant=refuse)


def raw_chat(usage: bytes = b"null", content: bytes = b'"kept"') -> bytes:
    first = (
        b'{"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": %s}}]}' % content
    )
    last = b'{"object": "chat.completion.chunk", "choices": [{"index": 0, "finish_reason": "stop"}],'
    return b'data: %s\n\ndata: %s "usage": %s}\n\ndata: [DONE]\n\n' % (first, last, usage)


def test_non_finite_numbers_are_printed_as_null() -> None:
    done = cli(stdin=raw_chat(usage=NON_FINITE))
    assert (done.returncode, done.stderr) == (0, b"")
    assert strict_json(done.stdout)["usage"] == {"a": None, "b": None, "c": None, "d": None, "e": [None]}


def test_lone_surrogates_are_printed_as_the_replacement_character() -> None:
    body = raw_chat(usage=b"{%s: 1}" % SURROGATES, content=SURROGATES)
    done = cli(stdin=body)
    assert (done.returncode, done.stderr) == (0, b"")
    out = strict_json(done.stdout)
    assert out["choices"][0]["message"]["content"] == "\ufffd \ufffd"
    assert out["usage"] == {"\ufffd \ufffd": 1}


def test_the_api_takes_a_str_with_lone_surrogates() -> None:
    result = assemble_sse(raw_chat().decode().replace("kept", "\ud800"))
    assert result.complete


def nested(levels: int) -> bytes:
    return b'{"a": ' * levels + b"1" + b"}" * levels


def test_usage_nested_500_levels_is_printed() -> None:
    done = cli(stdin=raw_chat(usage=nested(500)))
    assert (done.returncode, done.stderr) == (0, b"")
    usage = json.loads(done.stdout)["usage"]
    for _ in range(500):
        usage = usage["a"]
    assert usage == 1


def nested_lists(levels: int) -> bytes:
    return b"[" * levels + b"1" + b"]" * levels


def test_usage_of_lists_nested_500_levels_is_printed() -> None:
    # Lists, not objects: the check that a list holds JSON data recursed, one frame per level.
    done = cli(stdin=raw_chat(usage=nested_lists(500)))
    assert (done.returncode, done.stderr) == (0, b"")
    usage = json.loads(done.stdout)["usage"]
    for _ in range(500):
        (usage,) = usage
    assert usage == 1


@pytest.mark.parametrize("levels", [500, 900, 995, 1000, 5000])
@pytest.mark.parametrize("shape", [nested, nested_lists], ids=["objects", "lists"])
@pytest.mark.parametrize("where", ["usage", "delta"])
def test_any_nesting_is_printed_or_bad_input(levels: int, shape: Any, where: str) -> None:
    value = shape(levels)
    body = raw_chat(usage=value) if where == "usage" else raw_chat(content=b'"kept", "x": %s' % value)
    done = cli(stdin=body)
    assert b"Traceback" not in done.stderr
    if done.returncode == 0:
        assert done.stderr == b"" and json.loads(done.stdout)["choices"][0]["message"]["content"] == "kept"
    else:
        assert (done.returncode, done.stdout, done.stderr.count(b"\n")) == (2, b"", 1)
        assert b"nested too deeply" in done.stderr


def test_nesting_deeper_than_a_reader_can_follow_is_bad_input() -> None:
    body = raw_chat(usage=nested(100_000))
    with pytest.raises(StreamFormatError, match="nested too deeply"):
        assemble_sse(body)
    done = cli(stdin=body)
    assert (done.returncode, done.stdout) == (2, b"")
    assert done.stderr.count(b"\n") == 1
    assert b"nested too deeply" in done.stderr


def test_deep_nesting_in_an_unknown_delta_field() -> None:
    body = raw_chat(content=b'"kept", "x": {"deep": %s}' % nested(900))
    result = assemble_sse(body)
    assert result.object["choices"][0]["message"]["content"] == "kept"
    done = cli(stdin=body)
    assert done.returncode in (0, 2), done.stderr
    assert done.stderr.count(b"\n") <= 1
    assert b"Traceback" not in done.stderr


# --- the command's input and output -----------------------------------------------------


def cli(*args: str, stdin: bytes = b"", **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "streamscope", "assemble", *(args or ["-"])],
        input=stdin,
        capture_output=True,
        timeout=120,
        preexec_fn=bounded(2048),
        **kwargs,
    )


@pytest.mark.parametrize("bad", [v[0] for v in WRONG_CHAT_FIELDS.values()], ids=WRONG_CHAT_FIELDS.keys())
def test_the_command_on_a_field_of_the_wrong_type(bad: Any) -> None:
    done = cli(stdin=chat_around(bad))
    assert done.returncode == 0
    assert strict_json(done.stdout)["choices"][0]["message"]["content"].startswith("kept")
    assert done.stderr.count(b"\n") == 1
    assert done.stderr.startswith(b"streamscope assemble: warning")


@pytest.mark.parametrize(
    "bad", [v[0] for v in WRONG_RESPONSES_FIELDS.values()], ids=WRONG_RESPONSES_FIELDS.keys()
)
def test_the_command_on_a_responses_field_of_the_wrong_type(bad: Any) -> None:
    done = cli(stdin=responses_around(bad))
    assert done.returncode == 0
    strict_json(done.stdout)
    assert done.stderr.count(b"\n") == 1
    assert done.stderr.startswith(b"streamscope assemble: warning")


def test_an_error_with_warnings_is_one_line() -> None:
    body = chat_around(chunk(choices=5)).replace(b"data: [DONE]", b'data: {"error": {"message": "boom"}}')
    done = cli(stdin=body)
    assert done.returncode == 4
    assert done.stderr.count(b"\n") == 1
    assert b"boom" in done.stderr and b"warning" in done.stderr


def test_closed_stdin_exits_2() -> None:
    done = _run_with_closed(0)
    assert (done.returncode, done.stdout) == (2, b"")
    assert done.stderr.count(b"\n") == 1
    assert b"Traceback" not in done.stderr


def test_closed_stdout_exits_5() -> None:
    done = _run_with_closed(1)
    assert done.returncode == 5
    assert done.stderr.count(b"\n") == 1
    assert done.stderr.startswith(b"streamscope assemble: cannot write the result")


def test_closed_stderr_still_exits_by_the_contract() -> None:
    done = _run_with_closed(2, body=chat_around({"error": {"message": "boom"}}))
    assert done.returncode == 4
    strict_json(done.stdout)


def _run_with_closed(fd: int, body: bytes = b"data: [DONE]\n\n") -> subprocess.CompletedProcess[bytes]:
    """Run the command on stdin ``body`` with file descriptor ``fd`` closed, as ``<&-`` etc. do."""
    redirect = {0: "<&-", 1: ">&-", 2: "2>&-"}[fd]
    command = f"{sys.executable} -m streamscope assemble - {redirect}"
    return subprocess.run(
        ["sh", "-c", command], input=body, capture_output=True, timeout=60, preexec_fn=bounded(2048)
    )


def test_a_reader_that_stops_early_gets_exit_5_and_no_traceback(tmp_path: Path) -> None:
    body = chat_around(chunk(choices=[])).replace(b'"kept"', json.dumps("x" * 1_000_000).encode())
    path = tmp_path / "big.sse"
    path.write_bytes(body)
    command = f"{sys.executable} -m streamscope assemble {path} | head -c 10 >/dev/null"
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command], capture_output=True, timeout=60, preexec_fn=bounded(2048)
    )
    assert done.returncode == 5
    assert b"Traceback" not in done.stderr and b"Exception ignored" not in done.stderr
    assert done.stderr.count(b"\n") == 1


def test_a_folder_or_unreadable_path_exits_2(tmp_path: Path) -> None:
    done = cli(str(tmp_path))
    assert (done.returncode, done.stdout) == (2, b"")
    assert done.stderr.startswith(b"streamscope assemble: cannot read")
    assert done.stderr.count(b"\n") == 1


# --- memory ------------------------------------------------------------------------------


def peak_rss_kib(args: list[str]) -> int:
    """The peak resident set of a child process, from wait4's rusage (not a timing)."""
    process = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=bounded(2048)
    )
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    assert process.returncode == 0, process.stderr.read() if process.stderr else b""
    return usage.ru_maxrss


def test_memory_is_bounded_by_the_result_not_the_input(tmp_path: Path) -> None:
    """A 40 MB stream whose result is 0.5 MB: the peak grows by far less than the input.

    Before streaming the input, the command held the body, its lines and their decoded
    data at once (about 4x the input).
    """
    piece = chunk(choices=[{"index": 0, "delta": {"content": "ab"}, "logprobs": None, "finish_reason": None}])
    line = f"data: {json.dumps(piece)}\n\n".encode() + b": " + b"p" * 300 + b"\n\n"
    count = 40_000_000 // len(line)
    small, big = tmp_path / "small.sse", tmp_path / "big.sse"
    small.write_bytes(line + b"data: [DONE]\n\n")
    with big.open("wb") as file:
        for _ in range(count // 1000):
            file.write(line * 1000)
        file.write(b"data: [DONE]\n\n")
    command = [sys.executable, "-m", "streamscope", "assemble"]
    baseline = peak_rss_kib([*command, str(small)])
    peak = peak_rss_kib([*command, str(big)])
    grown_mib = (peak - baseline) / 1024
    assert grown_mib < 25, f"peak {peak / 1024:.0f} MiB, {grown_mib:.0f} MiB over a one-chunk stream"
