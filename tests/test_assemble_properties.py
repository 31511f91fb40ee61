"""Properties of SSE assembly over the recorded corpus, with hypothesis.

- However the bytes are split into network reads (inside a UTF-8 character too), the
  result is the same.
- Any legal framing of the same events (LF, CRLF or CR line ends, mixed; a BOM;
  comment, id, retry, unknown-field and extra blank lines) gives the same result.
- A stream truncated after any event gives the result of that prefix of events,
  marked incomplete; truncated anywhere, it never raises once an event has arrived.
- Any JSON value (null, booleans, integers of any size, NaN and infinities, strings
  with lone surrogates, arrays, objects) put in any field of any event, at any depth,
  or added as a new field: assembly returns a result whose object is JSON data, or
  raises `StreamFormatError`; nothing else. So does feeding the events one by one.
"""

from __future__ import annotations

import functools
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from corpus import COMPAT_STREAMS, CORPUS_STREAMS, NO_COMPAT, NO_CORPUS, payloads
from hypothesis import given, settings
from hypothesis import strategies as st
from streamscope.assemble import Assembler, AssembleResult, StreamFormatError, assemble_sse

PROPERTY = settings(max_examples=60, deadline=None)


@functools.cache
def raw_of(path: Path) -> bytes:
    raw = path.read_bytes()
    assert b"\r" not in raw  # the corpus is LF-framed: the tests below rewrite that framing
    return raw


@functools.cache
def whole(path: Path) -> AssembleResult:
    return assemble_sse(raw_of(path))


def event_ends(raw: bytes) -> list[int]:
    """The offsets just after each event's terminating blank line."""
    ends, at = [], raw.find(b"\n\n")
    while at != -1:
        ends.append(at + 2)
        at = raw.find(b"\n\n", at + 2)
    return ends


@functools.cache
def prefix_result(path: Path, events: int) -> AssembleResult:
    """The result of feeding the first ``events`` payloads straight to an Assembler."""
    raw = raw_of(path)
    assembler = Assembler(require_done=True)
    for block in raw[: event_ends(raw)[events - 1]].split(b"\n\n")[:events] if events else []:
        data = block.split(b"data: ", 1)[1].decode()
        assembler.feed(data if data.startswith("[DONE]") else json.loads(data))
    return assembler.result()


@st.composite
def splits(draw: st.DrawFn, streams: list[Path]) -> tuple[Path, list[bytes]]:
    path = draw(st.sampled_from(streams))
    raw = raw_of(path)
    inside_chars = [i for i in range(1, len(raw)) if raw[i] & 0xC0 == 0x80]  # UTF-8 continuation bytes
    cuts = draw(st.lists(st.integers(0, len(raw)), max_size=40))
    if inside_chars:
        cuts += draw(st.lists(st.sampled_from(inside_chars), max_size=5))
    bounds = [0, *sorted(set(cuts)), len(raw)]
    return path, [raw[a:b] for a, b in itertools.pairwise(bounds)]


@PROPERTY
@given(st.data())
def test_any_split_into_reads_gives_the_same_result(corpus_streams: list[Path], data: st.DataObject) -> None:
    path, pieces = data.draw(splits(corpus_streams))
    assert assemble_sse(iter(pieces)) == whole(path)


EXTRA_LINES = [b": keep-alive", b":", b"id: 42", b"retry: 3000", b"x-unknown: 1", b"noise", b""]


@st.composite
def reframed(draw: st.DrawFn, streams: list[Path]) -> tuple[Path, bytes]:
    path = draw(st.sampled_from(streams))
    lines = raw_of(path).split(b"\n")[:-1]  # every line ends with LF
    out = [b"\xef\xbb\xbf"] if draw(st.booleans()) else []
    previous_end = b""
    for line in lines:
        for extra in draw(st.lists(st.sampled_from(EXTRA_LINES), max_size=2)):
            previous_end = _append(out, extra, draw(st.sampled_from([b"\n", b"\r\n", b"\r"])), previous_end)
        previous_end = _append(out, line, draw(st.sampled_from([b"\n", b"\r\n", b"\r"])), previous_end)
    return path, b"".join(out)


def _append(out: list[bytes], line: bytes, end: bytes, previous_end: bytes) -> bytes:
    if previous_end == b"\r" and not line and end == b"\n":
        end = b"\r\n"  # CR then an empty LF line would read as one CRLF: a different stream
    out += [line, end]
    return end


@PROPERTY
@given(st.data())
def test_any_legal_framing_gives_the_same_result(corpus_streams: list[Path], data: st.DataObject) -> None:
    path, raw = data.draw(reframed(corpus_streams))
    assert assemble_sse(raw) == whole(path)


@PROPERTY
@given(st.data())
def test_truncation_after_an_event_gives_the_prefix_result_marked_incomplete(
    corpus_streams: list[Path], data: st.DataObject
) -> None:
    path = data.draw(st.sampled_from(corpus_streams))
    raw = raw_of(path)
    ends = event_ends(raw)
    events = data.draw(st.integers(1, len(ends)))
    result = assemble_sse(raw[: ends[events - 1]])
    expected = prefix_result(path, events)
    assert result.object == expected.object
    if events < len(ends):
        assert not result.complete
        assert result.reason
    else:
        assert result == whole(path)


@PROPERTY
@given(st.data())
def test_truncation_anywhere_keeps_every_whole_event(corpus_streams: list[Path], data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(corpus_streams))
    raw = raw_of(path)
    cut = data.draw(st.integers(0, len(raw)))
    before = sum(1 for end in event_ends(raw) if end <= cut)
    try:
        result = assemble_sse(raw[:cut])
    except StreamFormatError:
        assert before == 0  # nothing whole arrived, and not even the start of a JSON event
        return
    ends = event_ends(raw)
    # An event whose data line arrived whole (its blank line did not) counts too.
    candidates = [prefix_result(path, n).object for n in {before, min(before + 1, len(ends))}]
    assert result.object in candidates
    if cut < ends[-1] - 2:  # the last event's data line is not all there
        assert not result.complete
        assert result.reason
    else:
        assert result == whole(path)


# --- any JSON value in any field ----------------------------------------------------------

ALL_STREAMS = CORPUS_STREAMS + COMPAT_STREAMS
any_text = st.text(st.characters(exclude_categories=()), max_size=6)  # lone surrogates too
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | any_text,  # NaN and infinities too
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text, inner, max_size=3),
    max_leaves=8,
)


def slots(value: Any) -> list[tuple[Any, Any]]:
    """Every (container, key) in a JSON value, at every depth."""
    found: list[tuple[Any, Any]] = []
    stack = [value]
    while stack:
        container = stack.pop()
        keys = list(container) if isinstance(container, dict) else range(len(container))
        for key in keys:
            found.append((container, key))
            if isinstance(container[key], (dict, list)):
                stack.append(container[key])
    return found


@st.composite
def events_with_any_value_somewhere(draw: st.DrawFn) -> list[Any]:
    raw = raw_of(draw(st.sampled_from(ALL_STREAMS)))
    events = payloads(raw)
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.sampled_from([i for i, e in enumerate(events) if isinstance(e, dict)]))
        places = slots(events[at])
        value = draw(json_values)
        if places and draw(st.booleans()):
            container, key = draw(st.sampled_from(places))
            container[key] = value
        else:
            field = draw(st.sampled_from(["choices", "delta", "type", "output_index", "item", "x"]))
            events[at][field] = value
    return events


def is_json_data(value: Any) -> bool:
    json.dumps(value)  # raises TypeError on anything that is not JSON data (keys included)
    return True


@pytest.mark.skipif(not ALL_STREAMS, reason=f"{NO_CORPUS}; {NO_COMPAT}")
@PROPERTY
@given(events_with_any_value_somewhere())
def test_any_json_value_in_any_field_is_a_result_or_a_stream_format_error(events: list[Any]) -> None:
    data = [e if isinstance(e, str) else json.dumps(e) for e in events]
    body = b"".join(b"data: " + d.encode("utf-8", "surrogatepass") + b"\n\n" for d in data)
    try:
        result = assemble_sse(body)
    except StreamFormatError:
        pass
    else:
        assert is_json_data(result.object)
        assert all(isinstance(w, str) for w in result.warnings)
        assert result.complete == (result.reason is None)
    assembler = Assembler(require_done=True)
    try:
        for event in events:
            assembler.feed(event)
    except StreamFormatError:
        return
    assert is_json_data(assembler.result().object)
